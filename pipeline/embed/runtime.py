"""Model runtimes: what runs the two towers' forward pass.

Preprocessing and tokenising stay in torch (the family owns them); a runtime
only maps the towers' inputs to their projected features. :class:`TorchRuntime`
calls the loaded model; :class:`OpenVinoRuntime` and :class:`OnnxRuntime` run
a graph exported from that same model, cached on disk under
``$XDG_CACHE_HOME/scenetag/exports`` (default ``~/.cache/scenetag``), keyed
by model, revision, runtime, the graph's precision (fp32: OpenVINO's bf16 is a
compile-time hint on the same graph), input size and :data:`EXPORT_VERSION`.

``auto`` is torch for now: on this machine torch bf16 beat OpenVINO fp32 in
the issue's measurements, so a default change waits for the bench to show a
gain at agreeing embeddings.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from pipeline.types import ModelLoadError

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "torch", "openvino", "onnxruntime")
# Bump when the export code changes what it writes: old entries are then never read.
EXPORT_VERSION = 1
_PACKAGE = {"openvino": "openvino", "onnxruntime": "onnxruntime"}
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16"}


def resolve_runtime(runtime: str, device: str) -> str:
    """Check ``runtime`` and resolve ``auto`` (torch, see the module docstring).

    Raises:
        ModelLoadError: an unknown runtime, an exported runtime on a non-CPU
            device, or its package is not installed.
    """
    if runtime not in RUNTIMES:
        raise ModelLoadError(f"unknown runtime {runtime!r}: use one of {', '.join(RUNTIMES)}")
    if runtime in ("auto", "torch"):
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


def cache_root() -> Path:
    """Where exported models live: ``$XDG_CACHE_HOME/scenetag`` or ``~/.cache/scenetag``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "scenetag"


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
        self._towers = {tower: self.load_tower(folder / f"{tower}{self.suffix}")
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

    def load_tower(self, path: Path) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def run_tower(self, tower: Any, arrays: list[Any]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def export_tower(cls, module: Any, example: tuple, names: list[str], dims: tuple[int, ...],
                     path: Path) -> None:
        raise NotImplementedError  # pragma: no cover - abstract


class OpenVinoRuntime(ExportedRuntime):
    """OpenVINO on the CPU at the precision asked for (its CPU plugin would otherwise
    pick bf16 on bf16 CPUs; on others a bf16 hint runs fp32)."""

    name = "openvino"
    suffix = ".xml"

    def load_tower(self, path: Path) -> Any:
        import openvino as ov

        hint = {"INFERENCE_PRECISION_HINT": _OV_PRECISION[self.precision]}
        return ov.Core().compile_model(str(path), "CPU", hint)

    def run_tower(self, tower: Any, arrays: list[Any]) -> Any:
        return tower(arrays)[0]

    @classmethod
    def export_tower(cls, module: Any, example: tuple, names: list[str], dims: tuple[int, ...],
                     path: Path) -> None:
        import openvino as ov

        del names, dims  # without `input`, the PyTorch frontend keeps every dimension dynamic
        graph = ov.convert_model(module, example_input=example)
        ov.save_model(graph, str(path), compress_to_fp16=False)  # its default halves the weights


class OnnxRuntime(ExportedRuntime):
    """ONNX Runtime's CPU execution provider."""

    name = "onnxruntime"
    suffix = ".onnx"

    def load_tower(self, path: Path) -> Any:
        import onnxruntime as ort

        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

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


EXPORTED: dict[str, type[ExportedRuntime]] = {"openvino": OpenVinoRuntime, "onnxruntime": OnnxRuntime}


def features(output: Any) -> Any:
    """transformers 5.x returns a model output; 4.x returned the tensor."""
    if hasattr(output, "pooler_output"):
        return output.pooler_output
    return output
