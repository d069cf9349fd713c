"""Loading a model: local folder or Hub id, its family, device and precision.

Weights load only from safetensors or through torch's weights-only loader,
never with remote code: a model folder whose configs ask for it
(``auto_map``) is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

from pipeline.config import is_local_model
from pipeline.embed.clip import ClipFamily
from pipeline.embed.embedder import AUTO_BATCH, Embedder, resolve_device, resolve_precision
from pipeline.embed.family import Family
from pipeline.embed.runtime import EXPORTED_PRECISIONS, MEASURED, exportable, resolve_runtime, reuse_stored
from pipeline.embed.siglip import Siglip2Family, SiglipFamily
from pipeline.types import ModelLoadError

log = logging.getLogger(__name__)

# transformers model types → family. Exact matches: SigLIP 2 NaFlex
# checkpoints say "siglip2", and a check for "siglip" alone would miss them.
FAMILIES: dict[str, type[Family]] = {"clip": ClipFamily, "siglip": SiglipFamily, "siglip2": Siglip2Family}
# Configs that may name code to run from the model's repository.
_CONFIG_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json", "processor_config.json")


def family_for(model_type: str) -> Family:
    """The family of a transformers ``model_type`` (untested types are run as CLIP, with a warning)."""
    family = FAMILIES.get(model_type)
    if family is None:
        log.warning("model type %r is not a tested family (%s): embedded and scored as CLIP",
                    model_type, ", ".join(FAMILIES))
        return ClipFamily()
    return family()


# --------------------------------------------------------------------------- loading


def load_embedder(model_id: str, *, revision: str | None = None, device: str = "auto",
                  precision: str = "auto", batch_size: int | str = "auto",
                  compile_model: bool = False, runtime: str = "auto",
                  stored: list[str] | None = None) -> Embedder:
    """Load a model from a local folder or a Hugging Face Hub id.

    Honours the HF cache and ``HF_HUB_OFFLINE``. Failure is a
    :class:`ModelLoadError` whose message says what to do. ``runtime``
    (``auto``, ``torch``, ``openvino``, ``onnxruntime``) says what runs the
    towers (:mod:`pipeline.embed.runtime`); the exported ones run on the CPU at
    fp32, bf16 (OpenVINO) or int8, and ``precision: auto`` there is measured
    once per model (:mod:`pipeline.embed.choose`). ``runtime: auto`` on a CPU
    measures runtime and precision together, once per model and machine
    (:mod:`pipeline.embed.auto`; why, in ``Embedder.auto_choice``). ``stored``: the precision
    labels of stored embeddings the new vectors must compare with; ``auto``
    then reuses their runtime (:func:`pipeline.embed.runtime.reuse_stored`).
    """
    import torch

    device = resolve_device(device)
    runtime, precision = reuse_stored(stored or [], runtime, precision, device)
    auto = runtime == "auto"
    runtime = resolve_runtime(runtime, device, precision=precision, compile_model=compile_model)
    if runtime == "torch" and precision == "int8":
        raise ModelLoadError("precision int8 runs on an exported CPU runtime: use --runtime openvino or "
                             "--runtime onnxruntime (with --device cpu)")
    model, tokenizer, image_processor = _load_parts(model_id, revision)
    model.eval()
    family = family_for(str(model.config.model_type))
    spec = family.preprocess_spec(image_processor)
    if auto and runtime != "torch" and not exportable(spec):
        runtime = _torch_for_unexportable(model_id, family, precision)
    if runtime == "torch":
        precision = resolve_precision(precision, device)
    elif runtime != MEASURED:
        precision = _exported_precision(precision, runtime)
    if precision in ("fp16", "bf16") and runtime == "torch":  # an exported graph stays fp32
        # bf16 on CPU too: whole-model bf16 ran 1.3-2.4x faster than fp32
        # weights under autocast (which re-casts every weight on every call),
        # at cosine >= 0.9999 to fp32 (docs/PERFORMANCE.md).
        model = model.to(torch.float16 if precision == "fp16" else torch.bfloat16)
    model = model.to(device)
    if compile_model and runtime == "torch":  # an exported graph is compiled by its runtime
        model = torch.compile(model)
    batch = AUTO_BATCH.get(device.split(":")[0], 32) if batch_size == "auto" else int(batch_size)
    revision = _revision_of(model, model_id, revision)
    # An exported runtime starts from the torch fp32 embedder: its preprocessing
    # feeds int8 calibration, and its embeddings are what `auto` must agree with.
    embedder = Embedder(model, tokenizer, spec, model_id=model_id, revision=revision, device=device,
                        precision="fp32" if runtime != "torch" else precision, batch_size=batch,
                        family=family)
    if runtime == MEASURED:
        from pipeline.embed import auto as measured
        from pipeline.embed.builder import ExportBuilder

        record = measured.choose(embedder, ExportBuilder(embedder), precision=precision)
        embedder.auto_choice = measured.summary(record)
    elif runtime != "torch":
        _attach_exported(embedder, runtime, precision, family)
    log.info("loaded %s (%s) on %s (%s, %s, batch %d)", model_id, family.name, device,
             getattr(embedder.runtime, "name", runtime), embedder.precision, batch)
    return embedder


def _torch_for_unexportable(model_id: str, family: Family, precision: str) -> str:
    """``runtime: auto`` for a model no export can run (its patch count varies per image): torch."""
    if precision == "int8":
        raise ModelLoadError(f"precision int8 runs on an exported runtime, and {model_id} ({family.name}) "
                             "takes a variable patch count per image, which no export can: use --precision "
                             "fp32 or bf16")
    log.info("runtime auto: %s (%s) takes a variable patch count per image: torch runs it",
             model_id, family.name)
    return "torch"


def _exported_precision(precision: str, runtime: str) -> str:
    """``precision`` checked for an exported runtime (``auto`` is decided at load, see choose.py)."""
    offered = EXPORTED_PRECISIONS[runtime]
    if precision == "auto" or precision in offered:
        return precision
    raise ModelLoadError(f"runtime {runtime} runs at {', '.join(offered[:-1])} or {offered[-1]} "
                         f"(precision {precision} is torch only): use --precision fp32 or --runtime torch")


def _attach_exported(embedder: Embedder, runtime: str, precision: str, family: Family) -> None:
    """Point ``embedder`` at ``runtime``'s exported towers (from the cache, or exported
    now) at ``precision``, or at the one ``auto`` measures best (:mod:`pipeline.embed.choose`)."""
    from pipeline.embed import choose

    build = _exported_builder(embedder, runtime, family)
    if precision == "auto":
        backend, precision, decision = choose.choose_precision(embedder, runtime, build)
        embedder.auto_choice = choose.summary(decision)
    else:
        backend = build(precision)
    embedder.runtime, embedder.precision = backend, precision


def _exported_builder(embedder: Embedder, runtime: str, family: Family) -> Any:
    """``precision`` → the exported runtime at that precision."""
    from pipeline.embed.builder import ExportBuilder

    if not exportable(embedder.preprocess_spec):
        raise ModelLoadError(f"runtime {runtime} needs a fixed input size, and {embedder.model_id} "
                             f"({family.name}) takes a variable patch count per image: use --runtime torch")
    builder = ExportBuilder(embedder)
    return lambda precision: builder.build(runtime, precision)


def _load_parts(model_id: str, revision: str | None) -> tuple[Any, Any, Any]:
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a loader prints no bars; the CLI owns the terminal

    local = Path(model_id).expanduser()
    if _looks_local(model_id):
        _check_model_folder(local)
    source = str(local) if local.is_dir() else model_id
    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": False}
    try:
        model = AutoModel.from_pretrained(source, weights_only=True, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
        image_processor = AutoImageProcessor.from_pretrained(source, **kwargs)
    except (OSError, ValueError, ImportError, pickle.UnpicklingError) as ex:
        raise ModelLoadError(_explain_load_failure(model_id, ex)) from ex
    except Exception as ex:
        if type(ex).__name__ != "SafetensorError":  # safetensors' Rust error, no import needed
            raise
        raise ModelLoadError(f"cannot load model {model_id!r}: its weights are damaged "
                             f"(truncated or corrupt safetensors file: {ex})") from ex
    _refuse_remote_code(getattr(model.config, "auto_map", None), model_id)
    if not hasattr(model, "get_image_features") or not hasattr(model, "get_text_features"):
        raise ModelLoadError(f"{model_id} is not an image-text model "
                             "(it has no get_image_features/get_text_features)")
    return model, tokenizer, image_processor


def _looks_local(model_id: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else is meant as a folder.
    return is_local_model(model_id) or Path(model_id).expanduser().exists()


def _check_model_folder(folder: Path) -> None:
    """A local model must be a folder with a readable config.json; say which
    part is missing (never "download it": a folder is not on the Hub)."""
    where = folder.absolute()
    if not folder.exists():
        raise ModelLoadError(f"no model folder at {where}")
    if not folder.is_dir():
        raise ModelLoadError(f"model {where} is a file, not a model folder")
    config = folder / "config.json"
    if not config.is_file():
        raise ModelLoadError(f"model folder {where} has no config.json (not a Hugging Face model folder)")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError) as ex:
        raise ModelLoadError(f"the model's config.json is invalid ({config.absolute()}: "
                             f"{getattr(ex, 'strerror', None) or ex})") from ex
    for name in _CONFIG_FILES:
        _refuse_remote_code(_read_json(folder / name).get("auto_map"), str(where), name)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # absent or unreadable: transformers says so when it needs the file
    return data if isinstance(data, dict) else {}


def _refuse_remote_code(auto_map: Any, model_id: str, where: str = "its config") -> None:
    """A config's ``auto_map`` names Python files of the repository to import:
    running them would execute whatever the model's author wrote."""
    if auto_map:
        raise ModelLoadError(f"model {model_id} asks to run its own code ({where} has auto_map); "
                             "scenetag never runs model code: use a model transformers supports natively")


def _explain_load_failure(model_id: str, ex: Exception) -> str:
    if isinstance(ex, pickle.UnpicklingError):  # torch's weights-only loader refused it
        return (f"cannot load model {model_id!r}: its pickled weights need code to load and "
                "were refused; use a model with safetensors weights")
    text = str(ex).splitlines()[0] if str(ex) else type(ex).__name__
    if _looks_local(model_id):
        return f"cannot load model folder {Path(model_id).expanduser().absolute()}: {text}"
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    hint = ("it is not in the local Hugging Face cache and the Hub cannot be reached"
            if offline or "connect" in text.lower() or "offline" in text.lower()
            or "cannot find" in text.lower() or "couldn't" in text.lower()
            else text)
    return (f"cannot load model {model_id!r}: {hint}. On a machine with internet run "
            f"`scenetag download-model {model_id}` (then copy ~/.cache/huggingface), "
            "or pass --model /path/to/a/local/model/folder")


CONTENT_REVISION = "sha256:"  # a local folder's revision: a hash of its weights, not a Hub commit


def is_content_revision(revision: str | None) -> bool:
    """Whether ``revision`` is a local folder's content hash (``sha256:...``)."""
    return bool(revision and revision.startswith(CONTENT_REVISION))


def hub_revision(revision: str | None) -> str | None:
    """``revision`` as the Hub takes it: a content hash names no Hub revision."""
    return None if is_content_revision(revision) else revision


def _revision_of(model: Any, model_id: str, revision: str | None) -> str | None:
    """The Hub commit the weights came from, or a content hash for a local folder."""
    commit = getattr(model.config, "_commit_hash", None)
    if commit:
        return str(commit)
    folder = Path(model_id)
    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    if not weights:
        return revision
    digest = hashlib.sha256()
    for path in weights:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return CONTENT_REVISION + digest.hexdigest()[:16]


HUB_TIMEOUT_S = 10  # the first request to the Hub; unanswered by then, it cannot be reached


def download(model_id: str, revision: str | None = None) -> str:
    """Fetch a model's config, tokenizer, processor and weights into the HF cache.

    Only safetensors weights are fetched when the repository has them; the
    TensorFlow/Flax/ONNX copies are never downloaded. Fails fast, as one
    :class:`ModelLoadError`: under ``HF_HUB_OFFLINE`` only a cached copy is
    found, and the first request is made once (huggingface_hub's listing
    call retries a dead network for 24 s).
    """
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    failed = f"cannot download model {model_id!r}"
    if constants.HF_HUB_OFFLINE:
        try:
            return snapshot_download(model_id, revision=revision)  # offline: the cached copy
        except (OSError, ValueError) as ex:
            raise ModelLoadError(f"{failed}: HF_HUB_OFFLINE is set and it is not in the local Hugging "
                                 "Face cache; unset HF_HUB_OFFLINE to download it") from ex
    try:
        info = HfApi().model_info(model_id, revision=revision, timeout=HUB_TIMEOUT_S)  # one try
        files = [s.rfilename for s in info.siblings or []]
        weights = [f for f in files if f.endswith(".safetensors")] or \
            [f for f in files if f.endswith(".bin") and "pytorch_model" in f]
        patterns = ["*.json", "*.txt", "*.model"] + weights
        return snapshot_download(model_id, revision=revision, allow_patterns=patterns)
    except (HfHubHTTPError, ValueError) as ex:  # the Hub answered: no such model, gated, ...
        raise ModelLoadError(f"{failed}: {_first_line(ex)}") from ex
    except _network_errors() as ex:
        raise ModelLoadError(f"{failed}: the Hugging Face Hub ({constants.ENDPOINT}) cannot be reached "
                             f"({_first_line(ex)}); check the network (and HF_ENDPOINT, proxies)") from ex


def _network_errors() -> tuple[type[BaseException], ...]:
    """What a request to the Hub raises when the network fails: OSError
    (requests, under huggingface_hub < 1) or httpx's TransportError (httpx
    under huggingface_hub 1.x, httpx2 under 2.x)."""
    import importlib

    errors: list[type[BaseException]] = [OSError]
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def _first_line(ex: BaseException) -> str:
    return next((line.strip() for line in str(ex).splitlines() if line.strip()), type(ex).__name__)
