"""Model runtimes: what runs the two towers' forward pass.

Preprocessing and tokenising stay in torch (the family owns them); a runtime
only maps the towers' inputs to their projected features. :class:`TorchRuntime`
calls the loaded model; :class:`OpenVinoRuntime` and :class:`OnnxRuntime` run
a graph exported from that same model, cached on disk under
``$XDG_CACHE_HOME/scenetag/exports`` (default ``~/.cache/scenetag``), keyed
by model, revision, runtime, the graph's precision (fp32: OpenVINO's bf16 is a
compile-time hint on the same graph; int8: the image tower quantised, see
:meth:`ExportedRuntime.quantize_tower`, in its :meth:`~ExportedRuntime.int8_format`),
input size and :data:`EXPORT_VERSION`.

``auto`` is torch on a GPU; on a CPU it is measured (:mod:`pipeline.embed.auto`):
which runtime and precision win follows the instruction set (OpenVINO int8 on
a Zen 5 with AVX-512 bf16, ONNX Runtime int8 on an AVX2 Zen 3, where OpenVINO
gained nothing: docs/PERFORMANCE.md), so no preference measured on one machine
is assumed on another. :envvar:`SCENETAG_CPU_RUNTIME` fixes ``auto``'s runtime
on CPUs instead (``torch`` skips every export and measurement). ``auto`` stays
torch where an export cannot serve: ``compile``, fp16, and families whose patch
count varies per image (:func:`auto_runtime`, :func:`exportable`). Over stored
embeddings ``auto`` reuses the runtime and precision they were made with
(:func:`reuse_stored`), so new vectors compare with them.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.types import ModelLoadError

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "openvino", "onnxruntime")
# Bump when the export code changes what it writes: old entries are then never read.
# 2: entries record the model, revision and key they were written under; int8 names its format.
EXPORT_VERSION = 2
_PACKAGE = {"openvino": "openvino", "onnxruntime": "onnxruntime"}
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}
# What each exported runtime can run; int8 quantises the image tower only (the
# text tower runs once per label set, and its fp32 keeps the label matrix exact).
EXPORTED_PRECISIONS = {"openvino": ("fp32", "bf16", "int8"), "onnxruntime": ("fp32", "int8")}

# What `runtime: auto` resolves to on a CPU until it is measured at load (pipeline.embed.auto).
MEASURED = "auto"
# Names the runtime `auto` runs on CPUs instead of measuring (`torch`: no export ever).
CPU_RUNTIME_ENV = "SCENETAG_CPU_RUNTIME"


def resolve_runtime(runtime: str, device: str, *, precision: str = "auto",
                    compile_model: bool = False) -> str:
    """Check ``runtime`` and resolve ``auto`` (:func:`auto_runtime`).

    Raises:
        ModelLoadError: an unknown runtime, an exported runtime on a non-CPU
            device, or its package is not installed.
    """
    if runtime not in RUNTIMES:
        raise ModelLoadError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    if runtime == "auto":
        return auto_runtime(device, precision=precision, compile_model=compile_model)
    if runtime == "torch":
        return "torch"
    if device != "cpu":
        raise ModelLoadError(f"runtime {runtime} runs on the CPU only (device is {device}): "
                             "use --device cpu or --runtime torch")
    try:
        __import__(_PACKAGE[runtime])
    except ImportError as ex:
        raise ModelLoadError(f"runtime {runtime} needs the {_PACKAGE[runtime]} package, which is not "
                             f"installed: pip install 'scenetag[cpu]' ({ex})") from ex
    return runtime


def auto_runtime(device: str, *, precision: str = "auto", compile_model: bool = False) -> str:
    """What ``runtime: auto`` runs on ``device`` before anything is measured: torch
    on GPUs, for ``compile`` (torch.compile compiles torch) and for fp16; on a CPU
    the runtime ``$SCENETAG_CPU_RUNTIME`` names (torch where its package is missing
    or it does not run ``precision``), else :data:`MEASURED`: chosen at load by
    measurement (:mod:`pipeline.embed.auto`)."""
    preferred = os.environ.get(CPU_RUNTIME_ENV, "").strip().lower() or MEASURED
    if preferred not in RUNTIMES:
        log.warning("%s=%s is not a runtime (use %s): measuring as auto does", CPU_RUNTIME_ENV, preferred,
                    ", ".join(RUNTIMES[1:]))
        preferred = MEASURED
    if device != "cpu" or compile_model or preferred == "torch" or precision == "fp16":
        return "torch"  # fp16 on a CPU is torch's alone
    if preferred == MEASURED:
        return MEASURED
    if precision != "auto" and precision not in EXPORTED_PRECISIONS[preferred]:
        return "torch"
    needs = [_PACKAGE[preferred]] + (["nncf"] if (preferred, precision) == ("openvino", "int8") else [])
    if not all(importable(name) for name in needs):
        if precision == "int8":
            raise ModelLoadError(f"precision int8 runs on {preferred}, which needs {' and '.join(needs)}: "
                                 "pip install 'scenetag[cpu]'")
        log.info("runtime auto: %s is not installed, using torch (pip install 'scenetag[cpu]')",
                 " and ".join(needs))
        return "torch"
    return preferred


def exportable(spec: Any) -> bool:
    """Whether a family's preprocessing feeds a fixed input size, which every exported
    graph needs (SigLIP 2 NaFlex varies its patch count per image)."""
    return not spec.naflex and (spec.crop_hw or spec.resize_hw) is not None


def split_label(label: str) -> tuple[str, str]:
    """A stored precision label as ``(runtime, precision)``: ``openvino-int8`` →
    ``("openvino", "int8")``, ``bf16`` → ``("torch", "bf16")`` (see
    ``Embedder.precision_label``)."""
    runtime, _, precision = label.rpartition("-")
    return (runtime, precision) if runtime in _PACKAGE else ("torch", label)


def reuse_stored(labels: list[str], runtime: str, precision: str, device: str) -> tuple[str, str]:
    """``runtime``/``precision`` for a model that must match stored embeddings
    (search queries, rescore's refinement frames) made at ``labels``.

    ``auto`` becomes the exported runtime and precision every stored input was
    embedded with, when that runtime runs here (CPU, package installed): an
    int8 image tower's vectors differ from torch's by up to 1 - 0.9997 in
    cosine, enough to reorder near-tied search hits. A store made by torch
    alone keeps torch (``auto`` would pick an exported runtime on a CPU); one
    made by several runtimes, or by one not available here, keeps ``auto``. An
    explicit runtime is never overridden; under ``auto`` the stored precision
    wins over ``precision`` (a config's precision says how to make new
    embeddings; the stored ones say what the new vectors must compare with).
    """
    made = {split_label(label) for label in labels if label}
    if runtime != "auto" or len(made) != 1:
        return runtime, precision
    ((stored_runtime, stored_precision),) = made
    if stored_runtime == "torch":
        return "torch", precision
    needs = [_PACKAGE[stored_runtime]]
    if (stored_runtime, stored_precision) == ("openvino", "int8"):
        needs.append("nncf")  # a cached int8 graph loads without it, but an export would not
    if device != "cpu" or not all(importable(name) for name in needs):
        log.info("the stored embeddings were made with %s %s, which does not run here (%s): using %s",
                 stored_runtime, stored_precision, device if device != "cpu" else "not installed", runtime)
        return runtime, precision
    log.info("embedding with the stored embeddings' runtime: %s %s", stored_runtime, stored_precision)
    if precision not in ("auto", stored_precision):
        log.info("precision %s set aside: the stored embeddings are %s", precision, stored_precision)
    return stored_runtime, stored_precision


def importable(name: str) -> bool:
    """Whether ``name`` would import, without importing it (NNCF takes seconds)."""
    import importlib.util
    import sys

    if name in sys.modules:
        return sys.modules[name] is not None  # None: imports of it are blocked
    return importlib.util.find_spec(name) is not None


def cache_root() -> Path:
    """Where exported models live: ``$XDG_CACHE_HOME/scenetag`` or ``~/.cache/scenetag``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "scenetag"


def decisions_folder(root: Path | None = None) -> Path:
    """Where measured choices (runtime ``auto``, precision ``auto``) are cached."""
    return (root or cache_root()) / "exports" / "decisions"


def decision_path(key: str) -> Path:
    """Where the measured choice named ``key`` is cached."""
    return decisions_folder() / f"{key}.json"


# --------------------------------------------------------------------------- runtimes


class TorchRuntime:
    """The loaded transformers model itself."""

    name = "torch"

    def __init__(self, model: Any) -> None:
        self.model = model

    def image_features(self, inputs: dict[str, Any]) -> Any:
        """The image tower's projected features (a torch tensor)."""
        return features(self.model.get_image_features(**inputs))

    def text_features(self, inputs: dict[str, Any]) -> Any:
        """The text tower's projected features (a torch tensor)."""
        return features(self.model.get_text_features(**inputs))


class ExportedRuntime:
    """Both towers as graphs exported from the loaded model and cached on disk.

    Subclasses say how a tower is exported (:meth:`export_tower`), which files
    it leaves (:attr:`suffix`) and how a saved tower is loaded (:meth:`load_tower`).
    """

    name = ""
    suffix = ""

    def __init__(self, folder: Path, precision: str = "fp32") -> None:
        self.folder = folder
        self.precision = precision
        self._towers = {tower: self.load_tower(folder / f"{tower}{self.suffix}", tower)
                        for tower in ("image", "text")}
        self._inputs = json.loads((folder / "meta.json").read_text(encoding="utf-8"))["inputs"]

    def image_features(self, inputs: dict[str, Any]) -> Any:
        """The image tower's projected features (a torch tensor)."""
        return self._run("image", inputs)

    def text_features(self, inputs: dict[str, Any]) -> Any:
        """The text tower's projected features (a torch tensor)."""
        return self._run("text", inputs)

    def _run(self, tower: str, inputs: dict[str, Any]) -> Any:
        import numpy as np
        import torch

        arrays = [np.ascontiguousarray(inputs[name].detach().cpu().numpy()) for name in self._inputs[tower]]
        # A copy: OpenVINO's output may be a view of its request's buffer, reused by the next call.
        return torch.from_numpy(np.array(self.run_tower(self._towers[tower], arrays), dtype=np.float32))

    def load_tower(self, path: Path, tower: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def run_tower(self, tower: Any, arrays: list[Any]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def export_tower(cls, module: Any, example: tuple, names: list[str], dims: tuple[int, ...],
                     path: Path) -> None:
        raise NotImplementedError  # pragma: no cover - abstract

    @classmethod
    def require(cls, precision: str) -> None:
        """Raise :class:`ModelLoadError` before any export when ``precision`` needs a missing package."""

    @classmethod
    def quantize_tower(cls, path: Path, out: Path, calibration: list[Any], *,
                       validation: list[Any] | None = None, target: float | None = None) -> dict:
        """Write an int8 version of the tower graph ``path`` to ``out`` (``calibration``:
        the tower's inputs, one list of arrays per sample, for methods that need them;
        ``validation`` and ``target``: see :attr:`accuracy_controlled`). Returns what
        was done, for the entry's meta.json."""
        raise NotImplementedError  # pragma: no cover - abstract

    # Whether quantize_tower keeps ops in float until the graph's min cosine to its own
    # fp32 graph on `validation` reaches `target` (part of the cache key when it does).
    accuracy_controlled = False
    # Whether quantize_tower reads the calibration pixels (not only their set's name).
    calibrated = True

    @classmethod
    def int8_format(cls) -> str:
        """The int8 format quantize_tower writes on this CPU, where it depends on the
        CPU (part of the int8 entry's cache key); "" where it does not."""
        return ""


class OpenVinoRuntime(ExportedRuntime):
    """OpenVINO on the CPU at the precision asked for (its CPU plugin would otherwise
    pick bf16 on bf16 CPUs; on others a bf16 hint runs fp32)."""

    name = "openvino"
    suffix = ".xml"

    def load_tower(self, path: Path, tower: str) -> Any:
        import openvino as ov

        from pipeline.embed.cpu_share import OPENVINO_COMPILE_CONFIG

        config = {"INFERENCE_PRECISION_HINT": self._hint(tower), **OPENVINO_COMPILE_CONFIG}
        return on_own_thread(lambda: ov.Core().compile_model(str(path), "CPU", config))

    def _hint(self, tower: str) -> str:
        # int8: the ops NNCF leaves unquantised run in f32. A bf16 hint there ran
        # ViT-B/32 1.3x faster but took the tiny SigLIP from cosine 0.98 to 0.77.
        del tower
        return "f32" if self.precision == "int8" else _OV_PRECISION[self.precision]

    def run_tower(self, tower: Any, arrays: list[Any]) -> Any:
        return tower(arrays)[0]

    @classmethod
    def export_tower(cls, module: Any, example: tuple, names: list[str], dims: tuple[int, ...],
                     path: Path) -> None:
        import openvino as ov

        del names, dims  # without `input`, the PyTorch frontend keeps every dimension dynamic
        graph = ov.convert_model(module, example_input=example)
        ov.save_model(graph, str(path), compress_to_fp16=False)  # its default halves the weights

    @classmethod
    def require(cls, precision: str) -> None:
        if precision == "int8":
            _import_nncf()

    accuracy_controlled = True

    @classmethod
    def quantize_tower(cls, path: Path, out: Path, calibration: list[Any], *,
                       validation: list[Any] | None = None, target: float | None = None) -> dict:
        """NNCF post-training quantisation (weights and activations int8), its
        activation ranges calibrated on ``calibration``; with ``validation`` and
        ``target``, NNCF's accuracy control then reverts the ops that cost the
        most agreement to float, one group at a time, until the min cosine to the
        fp32 graph on ``validation`` reaches ``target`` (:func:`_accuracy_controlled`).
        Weight-only compression (``nncf.compress_weights``) ran slower than bf16 here,
        so it is not offered."""
        import time

        import openvino as ov

        nncf = _import_nncf()
        started = time.perf_counter()
        graph = ov.Core().read_model(str(path))
        controlled = validation is not None and target is not None
        with contextlib.redirect_stdout(io.StringIO()):  # its progress bars (rich) draw on stdout
            # NNCF compiles (and drops) a model per quantiser group: off the main thread (on_own_thread)
            if controlled:
                quantised = on_own_thread(lambda: _accuracy_controlled(nncf, graph, calibration, validation,
                                                                       target))
            else:
                quantised = on_own_thread(lambda: nncf.quantize(
                    graph, nncf.Dataset(calibration), subset_size=len(calibration),
                    model_type=nncf.ModelType.TRANSFORMER))
        ov.save_model(quantised, str(out), compress_to_fp16=False)
        report = {"method": "nncf-accuracy-control" if controlled else "nncf-ptq",
                  "seconds": round(time.perf_counter() - started, 1), **int8_census(quantised)}
        if controlled:
            report.update(target=target, validation_images=len(validation),
                          validation_min_cosine=round(_min_cosine_to(graph, quantised, validation), 7))
        return report

    @classmethod
    def quick_int8(cls, path: Path, calibration: list[Any]) -> Any:
        """The graph ``path`` quantised without accuracy control on a few ``calibration``
        samples and compiled as :meth:`load_tower` compiles int8 (nothing is saved): a
        probe of what int8 speed this CPU gives, before the minutes that
        :meth:`quantize_tower` with accuracy control takes."""
        import openvino as ov

        from pipeline.embed.cpu_share import OPENVINO_COMPILE_CONFIG

        nncf = _import_nncf()
        graph = ov.Core().read_model(str(path))
        with contextlib.redirect_stdout(io.StringIO()):
            quantised = on_own_thread(lambda: nncf.quantize(
                graph, nncf.Dataset(calibration), subset_size=len(calibration),
                model_type=nncf.ModelType.TRANSFORMER))
        config = {"INFERENCE_PRECISION_HINT": "f32", **OPENVINO_COMPILE_CONFIG}
        return on_own_thread(lambda: ov.Core().compile_model(quantised, "CPU", config))


# NNCF ranks each group of quantisers by the validation min cosine with that group
# reverted, on the items that lost the most; fewer items rank faster (one compile
# and one pass per group; a ViT-B/32 has about 100 groups).
RANKING_ITEMS = 12
# Whether the accuracy-controlled int8 starts from SmoothQuant (NNCF's default for
# transformers; part of the export's cache key through choose.calibration). Off:
# NNCF 3.4 reverts an op by restoring its original weights but keeps SmoothQuant's
# activation scaling in front of it, so each "restored" op computed wrong values
# (tiny CLIP: validation min cosine 0.991 fully int8, 0.787 after 14 reverts;
# without SmoothQuant 0.9988 after 9).
SMOOTH_QUANT = False


def _accuracy_controlled(nncf: Any, graph: Any, calibration: list[Any], validation: list[Any],
                         target: float) -> Any:
    """``nncf.quantize_with_accuracy_control`` with the metric ``auto`` judges by:
    the min cosine of each validation item's features to those of the fp32 graph
    (NNCF's drop is from the fp32 graph's own metric, 1 to within 1e-7)."""
    import numpy as np

    reference = _compile_f32(graph)
    items = [(arrays, _unit(reference(arrays)[0])) for arrays in validation]

    def validate(compiled: Any, data: Any) -> tuple[float, list[float]]:
        cosines = [float(np.sum(_unit(compiled(arrays)[0]) * want)) for arrays, want in data]
        return min(cosines), cosines

    restorer = nncf.AdvancedAccuracyRestorerParameters(ranking_subset_size=min(RANKING_ITEMS, len(items)))
    advanced = None
    if not SMOOTH_QUANT:
        from nncf.quantization.advanced_parameters import AdvancedSmoothQuantParameters

        advanced = nncf.AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1))
    return nncf.quantize_with_accuracy_control(
        graph, nncf.Dataset(calibration), nncf.Dataset(items, lambda item: item[0]), validate,
        max_drop=1.0 - target, drop_type=nncf.DropType.ABSOLUTE, model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(calibration), advanced_quantization_parameters=advanced,
        advanced_accuracy_restorer_parameters=restorer)


def _compile_f32(graph: Any) -> Any:
    import openvino as ov

    return on_own_thread(lambda: ov.Core().compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}))


def _unit(vectors: Any) -> Any:
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def _min_cosine_to(graph: Any, quantised: Any, validation: list[Any]) -> float:
    """The min cosine of ``quantised``'s features to ``graph``'s on ``validation``."""
    import numpy as np

    want, got = _compile_f32(graph), _compile_f32(quantised)
    return min(float(np.min(np.sum(_unit(got(a)[0]) * _unit(want(a)[0]), axis=-1))) for a in validation)


def int8_census(graph: Any) -> dict:
    """How many of ``graph``'s MatMuls (and convolutions) run int8, and which run in
    float: one whose inputs no FakeQuantize feeds stays float."""
    heavy = [op for op in graph.get_ordered_ops() if op.get_type_name() in ("MatMul", "Convolution")]
    fed = [any(_quantised_input(op.input_value(i).get_node()) for i in range(op.get_input_size()))
           for op in heavy]
    return {"int8_ops": sum(fed), "float_ops": [op.get_friendly_name() for op, q in zip(heavy, fed) if not q]}


def _quantised_input(node: Any) -> bool:
    # A weight's FakeQuantize is folded to int8 constants (Constant → Convert → Subtract/Multiply).
    seen = 0
    while node.get_type_name() in ("Convert", "Subtract", "Multiply", "Reshape", "Transpose") and seen < 4:
        if node.get_type_name() == "Convert" and str(node.input_value(0).get_element_type()) in ("i8", "u8"):
            return True
        node, seen = node.input_value(0).get_node(), seen + 1
    return node.get_type_name() == "FakeQuantize"


class OnnxRuntime(ExportedRuntime):
    """ONNX Runtime's CPU execution provider."""

    name = "onnxruntime"
    suffix = ".onnx"

    def load_tower(self, path: Path, tower: str) -> Any:
        import onnxruntime as ort

        from pipeline.embed.cpu_share import ONNXRUNTIME_SESSION_CONFIG

        options = ort.SessionOptions()
        for key, value in ONNXRUNTIME_SESSION_CONFIG.items():  # the decoder shares the cores
            options.add_session_config_entry(key, value)
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])

    def run_tower(self, tower: Any, arrays: list[Any]) -> Any:
        feeds = {node.name: array for node, array in zip(tower.get_inputs(), arrays)}
        return tower.run(None, feeds)[0]

    @classmethod
    def export_tower(cls, module: Any, example: tuple, names: list[str], dims: tuple[int, ...],
                     path: Path) -> None:
        import torch

        # torch 2.13 exports through torch.export (dynamo=True, needs onnxscript);
        # `dims` of every input are dynamic (batch; the text length CLIP pads to).
        dynamic = tuple({d: torch.export.Dim.DYNAMIC for d in dims} for _ in example)
        # Its op registry warns once per missing torchvision op, which a CLIP never uses.
        registry = logging.getLogger("torch.onnx._internal.exporter._registration")
        level = registry.level
        registry.setLevel(logging.ERROR)
        try:
            torch.onnx.export(module, example, str(path), input_names=names, output_names=["features"],
                              dynamic_shapes=dynamic, dynamo=True, external_data=True, verbose=False)
        finally:
            registry.setLevel(level)


    calibrated = False  # dynamic: activation ranges are taken per batch at run time

    @classmethod
    def int8_format(cls) -> str:
        """``u8s8`` (uint8 activations, int8 weights), with 7-bit weights
        (``-reduce-range``) on an x86 CPU without VNNI: there the u8s8 kernels sum
        pairs of products in 16 bits (``vpmaddubsw``), which saturates, and ONNX
        Runtime's quantisation guide advises ``reduce_range=True`` (the tiny SigLIP
        fell to cosine 0.955 to fp32 on an AVX2 Zen 3). VNNI, AMX and ARM's kernels
        accumulate in 32 bits: full 8-bit weights there."""
        from pipeline.embed import cpu

        x86 = "sse2" in cpu.flags() or "avx2" in cpu.flags()
        return "u8s8-reduce-range" if x86 and not cpu.has_int8_dot() else "u8s8"

    @classmethod
    def quantize_tower(cls, path: Path, out: Path, calibration: list[Any], *,
                       validation: list[Any] | None = None, target: float | None = None) -> dict:
        """ONNX Runtime's dynamic quantisation: int8 weights, activations
        quantised per batch at run time (no calibration needed), in this CPU's
        :meth:`int8_format`."""
        from onnxruntime.quantization import QuantType, quantize_dynamic

        del calibration, validation, target
        fmt = cls.int8_format()
        # It warns to run its pre-processing first; the parity tests and the bench check the result.
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8,
                             reduce_range=fmt.endswith("reduce-range"),
                             use_external_data_format=False)  # int8 weights fit the 2 GB protobuf
        finally:
            root.setLevel(level)
        return {"method": "onnxruntime-dynamic", "format": fmt}


def on_own_thread(call: Callable[[], Any]) -> Any:
    """``call()`` on a thread of its own: its result, or its exception re-raised here.

    OpenVINO's CPU plugin (2026.x) sets a signal stack (``sigaltstack``) on the thread
    that compiles a model and puts back the one it found there when the model is
    destroyed. Models made and dropped out of order (two towers, ``auto``'s candidates,
    NNCF's many) left the main thread's signal stack pointing at freed memory, and the
    next signal there (Ctrl-C; every handler CPython installs asks for that stack)
    killed the process with SIGSEGV instead of running the handler. A fresh thread has
    no signal stack, so what the plugin puts back is none.
    """
    import threading

    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as ex:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = ex

    thread = threading.Thread(target=run, name="scenetag-openvino", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _import_nncf() -> Any:
    try:
        import nncf
    except ImportError as ex:
        raise ModelLoadError("precision int8 on openvino needs the nncf package, which is not installed: "
                             f"pip install 'scenetag[cpu]' ({ex})") from ex
    # NNCF logs to its own stdout handler (tables, notes at INFO): its warnings go
    # through ours instead, and a loader prints nothing.
    logger = logging.getLogger("nncf")
    logger.handlers, logger.propagate = [], True
    logger.setLevel(logging.WARNING)
    return nncf


EXPORTED: dict[str, type[ExportedRuntime]] = {"openvino": OpenVinoRuntime, "onnxruntime": OnnxRuntime}


def features(output: Any) -> Any:
    """transformers 5.x returns a model output; 4.x returned the tensor."""
    if hasattr(output, "pooler_output"):
        return output.pooler_output
    return output
