"""Ray engine: the same decode → embed stages as ``local.py``, spread over a
Ray cluster with Ray Data.

The dataflow, one row per input going in::

    from_items([{position, path}])                       one block per input
      └─ map_batches(_decode_rows)       CPU tasks      rows per chunk of frames
           └─ map_batches(_EmbedActor)   actor pool     same rows, images → embeddings
                └─ driver: regroup rows by position, yield EmbeddedInput in input order

Workers receive *builders* (the config as a JSON-able dict), never live
objects: each decode task builds its decoder opener from the config and each
actor loads the model once in ``__init__``. Decoding is the very same
:func:`pipeline.engine.base.decode_input` the local engine calls, so both
engines see the same frames and produce the same results.

Rows are Arrow-friendly: ``images`` is a uint8 tensor (n x H x W x 3),
``indices``/``times``/``embeddings`` are numeric tensors, and per-input
metadata travels as a JSON string on one extra "end" row per input (``meta``
is empty on chunk rows). The end row also says how many chunk rows to expect,
so the driver knows when an input is complete whatever order rows arrive in.

A bad input fails only its own end row (error message + error class name). A
task that dies outright is retried by Ray; if it keeps dying, Ray Data drops
that block (``max_errored_blocks``) and the driver reports the inputs it never
heard from as failed, so the rest of the job still finishes.

Ray is an optional dependency, imported only inside this module's functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import queue
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from pipeline.engine.base import EmbeddedInput, collect_chunks, decode_input
from pipeline.types import DecodeStats, DecodeTimeout, FrameBatch, GapScan, PipelineError, VideoInfo

log = logging.getLogger(__name__)

# Inputs refined at a time beside the streaming job on a CPU cluster: enough
# that each round's scan and probe tasks fill the cluster, few enough that a
# killed driver loses little and the driver holds little.
RAY_REFINE_GROUP = 32
INSTALL_HINT = 'the ray engine needs Ray Data: pip install "scenetag[ray]"'
_NO_IMAGES = np.zeros((0, 0, 0, 3), np.uint8)


REACH_TIMEOUT_S = 5.0  # a cluster's head answers a TCP connect at once; ray.init alone retries for minutes


def cluster_address(given: str | None) -> str | None:
    """Where to find Ray, as Ray users expect: ``--ray-address`` wins, else
    ``RAY_ADDRESS`` (set inside a RayJob, a Ray Jobs submission or a shell a
    Ray user prepared), else None: a local Ray sized to this machine."""
    return given or os.environ.get("RAY_ADDRESS") or None


def check_reachable(address: str, source: str, timeout_s: float = REACH_TIMEOUT_S) -> None:
    """Raise a one-line PipelineError when ``host:port`` (or ``ray://host:port``)
    does not accept a connection: ``ray.init`` on an address that does not
    answer retries for minutes without a word. ``auto`` and other forms are
    left to Ray."""
    import socket

    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit() or "/" in host:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as ex:
        why = "no answer" if isinstance(ex, TimeoutError) else (ex.strerror or str(ex))
        raise PipelineError(f"cannot reach Ray at {address} ({source}): {why}") from None


class RayEngine:
    """Decode in Ray tasks, embed in a pool of Ray actors.

    Args:
        config: the effective :class:`~pipeline.config.Config`.
        address: ``None`` joins ``RAY_ADDRESS`` when set, else starts (or
            reuses) a local Ray sized to this machine;
            ``"auto"`` joins the cluster this node belongs to;
            ``"ray://host:10001"`` connects through Ray Client.
        short_side: the model's input size; decoders resize frames to it.
        still_resize: how the model's processor resizes a still picture
            (``Embedder.still_resize``); still images are resized with it.
        chunk_size: frames per row between the stages.
        num_actors: embedding actors (default: one per GPU in the cluster,
            else one).
        rows_per_call: chunk rows handed to an actor per call.
        progress: show Ray Data's progress bars.
        max_retries: retries of a decode task that died (crash, lost node).
    """

    def __init__(self, config, *, address: str | None = None, short_side: int | None = None,
                 still_resize: Callable | None = None, chunk_size: int = 32,
                 num_actors: int | None = None, rows_per_call: int = 8,
                 progress: bool = True, max_retries: int = 3) -> None:
        self.config = config
        self.address = address
        self.short_side = short_side
        self.still_resize = still_resize
        self.chunk_size = chunk_size
        self.num_actors = num_actors
        self.rows_per_call = rows_per_call
        self.progress = progress
        self.max_retries = max_retries

    def run(self, paths: Sequence[str], embed_images: Callable | None = None) -> Iterator[EmbeddedInput]:
        """Yield one :class:`EmbeddedInput` per path, in input order.

        ``embed_images`` is accepted for interface parity with the local
        engine and ignored: the actors embed with their own model copies.
        """
        ray = _import_ray()
        _quiet_ray_logs()
        started_here = self._connect(ray)
        try:
            yield from _regroup(paths, self._rows(ray, paths))
        finally:
            if started_here:
                ray.shutdown()

    def __enter__(self) -> RayEngine:
        """Hold one Ray session across :meth:`run` and :meth:`probe` calls."""
        ray = _import_ray()
        _quiet_ray_logs()
        self._started_here = self._connect(ray)
        return self

    def __exit__(self, *exc) -> None:
        actor, self._probe_actor = getattr(self, "_probe_actor", None), None
        if actor is not None:
            with contextlib.suppress(Exception):  # already gone with its cluster
                _import_ray().kill(actor)
        if getattr(self, "_started_here", False):
            _import_ray().shutdown()
            self._started_here = False

    def refine_group_size(self) -> int | None:
        """Inputs refined together while the job streams on (their outputs are
        written then: a killed driver loses at most a group), or None: all at
        once, after the job. On a cluster without GPUs for the model,
        refinement's scans and probes are Ray tasks that queue behind the
        decode tasks and the driver's model embeds their frames, so groups are
        safe. With GPUs its actor needs a GPU that the embed pool holds until
        the job ends: refinement waits for the job."""
        ray = _import_ray()
        if not ray.is_initialized():
            return None
        on_gpus = self.config.model.device != "cpu" and int(ray.cluster_resources().get("GPU", 0)) > 0
        return None if on_gpus else RAY_REFINE_GROUP

    def probe(self, requests: dict[str, list[int]], embed_images: Callable | None = None,
              frames: dict[str, FrameBatch] | None = None) -> dict[str, EmbeddedInput]:
        """Edge refinement: decode the given frames of each input in Ray
        tasks and embed them all at once (see :meth:`_embed_refinement`):
        ``{path: frame indices}`` -> ``{path: embedded}`` (no frames where
        none of them exists; an input that cannot be read is left out).
        ``frames``: frames already decoded (by :meth:`scan`), embedded as they are."""
        from pipeline.engine.base import merge_batches, split_wanted

        ray = _import_ray()
        _quiet_ray_logs()
        started_here = self._connect(ray)
        try:
            spec = _spec(self.config, self.short_side, self.chunk_size)
            held = frames or {}
            split = {path: split_wanted(wanted, held.get(path)) for path, wanted in requests.items()}
            decode = ray.remote(num_cpus=1, max_retries=self.max_retries)(_probe_decode)
            tasks = {path: decode.remote(spec, path, rest) for path, (_, rest) in split.items() if rest}
            found = dict(zip(tasks, ray.get(list(tasks.values()))))
            out, batches = {}, {}
            for path, (have, _) in split.items():
                batch, n = found.get(path, (None, 0))
                if n < 0 and have is None:
                    continue  # unreadable
                out[path] = EmbeddedInput(path=path, stats=DecodeStats(frames_decoded=max(n, 0)))
                if (merged := merge_batches([have, batch])) is not None:
                    batches[path] = merged
            vectors = self._embed_refinement(ray, spec, list(batches.values()), embed_images)
            for (path, batch), vec in zip(batches.items(), vectors):
                out[path] = dataclasses.replace(out[path], indices=batch.indices, times_s=batch.times_s,
                                                embeddings=vec)
            return out
        except Exception as ex:  # refinement is best effort: its edges keep their sampled times
            log.warning("ray: edge refinement failed: %s", _first_line(ex))
            return {}
        finally:
            if started_here:
                self._probe_actor = None
                ray.shutdown()

    def scan(self, requests: dict[str, list[tuple[int, int]]]) -> dict[str, list[GapScan]]:
        """Edge refinement's gap scans (:func:`pipeline.engine.base.decode_gaps`),
        one Ray task per input; an input that cannot be read is left out."""
        ray = _import_ray()
        _quiet_ray_logs()
        started_here = self._connect(ray)
        try:
            spec = _spec(self.config, self.short_side, self.chunk_size)
            task = ray.remote(num_cpus=1, max_retries=self.max_retries)(_scan_decode)
            paths = list(requests)
            found = ray.get([task.remote(spec, path, [tuple(g) for g in requests[path]]) for path in paths])
            return {path: scans for path, scans in zip(paths, found) if scans is not None}
        except Exception as ex:  # best effort: refinement then bisects
            log.warning("ray: edge refinement's gap scans failed: %s", _first_line(ex))
            return {}
        finally:
            if started_here:
                ray.shutdown()

    def _embed_refinement(self, ray, spec: dict[str, Any], batches: list[FrameBatch],
                          embed_images: Callable | None) -> list[np.ndarray]:
        """Refinement frames are few: on a CPU-only cluster the driver's own
        model embeds them (a fresh actor would cost a model load per run);
        with GPUs, the session's refinement actor, on one of them, does."""
        if not batches:
            return []
        gpus = int(ray.cluster_resources().get("GPU", 0)) if spec["device"] != "cpu" else 0
        if embed_images is not None and not gpus:
            from pipeline.engine.base import embed_in_batches

            size = self.config.model.batch_size
            return embed_in_batches(batches, embed_images, size if isinstance(size, int) else 64)
        if getattr(self, "_probe_actor", None) is None:
            self._probe_actor = ray.remote(num_gpus=1 if gpus else 0)(_RefineActor).remote(spec)
        return ray.get(self._probe_actor.embed.remote(batches))

    # ------------------------------------------------------------------ setup

    def _connect(self, ray) -> bool:
        """Join or start Ray; True when this call started it (and must stop it)."""
        if ray.is_initialized():
            return False
        debug = logging.getLogger().isEnabledFor(logging.DEBUG)
        kwargs: dict[str, Any] = dict(ignore_reinit_error=True, include_dashboard=False,
                                      log_to_driver=debug, configure_logging=False)
        address = cluster_address(self.address)
        if address is None:
            kwargs["num_cpus"] = os.cpu_count() or 1
        else:
            check_reachable(address, "--ray-address" if self.address else "RAY_ADDRESS")
        if not debug and not os.environ.get("RAY_BACKEND_LOG_LEVEL"):
            # The driver's C++ core worker logs errors to stderr, and on every
            # run logs one about actor constructor arguments that Ray Data's
            # actor pool always triggers (ray-project/ray#53727) though nothing
            # failed. Real failures reach us as exceptions. A user's own
            # setting wins.
            os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"
        try:
            with contextlib.nullcontext() if debug else _stderr_to_log():
                ray.init(address=address or "local", **kwargs)
        except Exception as ex:  # ConnectionError, RuntimeError, ValueError...
            raise PipelineError(f"cannot start or reach Ray at {address or 'local'}: "
                                f"{_first_line(ex)}") from ex
        return True

    def _rows(self, ray, paths: Sequence[str]) -> Iterator[dict]:
        """Build the dataset and stream its output rows (no images left in them)."""
        from ray.data import ActorPoolStrategy

        spec = _spec(self.config, self.short_side, self.chunk_size, self.still_resize)
        gpus = int(ray.cluster_resources().get("GPU", 0)) if spec["device"] != "cpu" else 0
        items = [{"position": i, "path": str(p)} for i, p in enumerate(paths)]
        ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
        ds.context.enable_progress_bars = self.progress
        ds.context.max_errored_blocks = -1  # a block that keeps failing costs its inputs only
        # Ray Data's defaults retry crashed tasks forever; a file that crashes
        # its decoder must not. Actors keep Ray Data's endless restarts (its
        # pool relies on them) but give up a batch after a few retries.
        # (2.60 calls these catch-all remote args deprecated but has no named
        # parameters for them yet.)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = ds.map_batches(_decode_rows, batch_size=1, fn_kwargs={"spec": spec}, num_cpus=1,
                                max_retries=self.max_retries)
            ds = ds.map_batches(_EmbedActor, batch_size=self.rows_per_call,
                                fn_constructor_kwargs={"spec": spec},
                                compute=ActorPoolStrategy(size=self.num_actors or max(1, gpus)),
                                max_task_retries=self.max_retries,
                                **({"num_gpus": 1} if gpus else {"num_cpus": 1}))
        try:
            yield from ds.iter_rows()
        except Exception as ex:  # the job as a whole failed: report it on the unfinished inputs
            log.debug("ray dataset failed", exc_info=True)
            yield {"position": -1, "meta": json.dumps({"job_error": _first_line(ex)})}


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as ex:
        raise PipelineError(INSTALL_HINT) from ex
    return ray


@contextlib.contextmanager
def _stderr_to_log() -> Iterator[None]:
    """Route file descriptor 2 to the debug log while Ray starts: its C++
    logger announces the log level there even when told to log fatal only."""
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            for line in sink.read().decode(errors="replace").splitlines():
                log.debug("ray: %s", line)


def _quiet_ray_logs() -> None:
    """Ray Data logs progress to its own console handler; keep that for --debug."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        return
    for name in ("ray", "ray.data"):
        for handler in logging.getLogger(name).handlers:
            if not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.ERROR)
    logging.getLogger("ray").setLevel(logging.ERROR)


def _spec(config, short_side: int | None, chunk_size: int,
          still_resize: Callable | None = None) -> dict[str, Any]:
    """Everything a worker needs to rebuild its decoder and model: plain data
    (``still_resize`` is a module function bound to a frozen dataclass: it pickles).

    Workers decode and embed, never score, so labels go without their example
    pictures: those files live on the driver's disk, and validating the
    config on a remote worker would look for them there."""
    data = config.model_dump(mode="json")
    for label in data["labels"] + data["nsfw"]["labels"]:
        for key in ("images", "negative_images", "image_weight"):
            label.pop(key, None)
    return {"config": data, "short_side": short_side, "chunk_size": chunk_size,
            "still_resize": still_resize, "device": config.model.device}


def _first_line(ex: BaseException) -> str:
    text = str(ex).strip().splitlines()
    return f"{type(ex).__name__}: {text[0]}" if text else type(ex).__name__


# --------------------------------------------------------------------------- decode (tasks)


def _decode_rows(batch: dict[str, np.ndarray], spec: dict[str, Any]) -> Iterator[dict]:
    """Decode each input of ``batch``: one row per chunk, then its end row."""
    from pipeline.config import parse_config
    from pipeline.decode import open_decoder

    cfg = parse_config(spec["config"])
    opener = partial(open_decoder, backend=cfg.decoder.backend, short_side=spec["short_side"],
                     strategy=cfg.decoder.strategy, threads=cfg.decoder.threads,
                     still_resize=spec["still_resize"])
    sampling = cfg.sampling.to_sampling()
    for position, path in zip(batch["position"], batch["path"], strict=True):
        chunks = 0
        for item in _decode_with_timeout(str(path), opener, sampling, spec["chunk_size"],
                                         cfg.decoder.timeout_s):
            if isinstance(item, FrameBatch):
                yield _chunk_row(int(position), chunks, item)
                chunks += 1
            else:
                yield _end_row(int(position), chunks, item)


def _probe_decode(spec: dict[str, Any], path: str, frames: list[int]) -> tuple[FrameBatch | None, int]:
    """A Ray task: :func:`pipeline.engine.base.decode_frames_at` with the
    decoder the config names."""
    from pipeline.config import parse_config
    from pipeline.decode import open_decoder
    from pipeline.engine.base import decode_frames_at

    cfg = parse_config(spec["config"])
    opener = partial(open_decoder, backend=cfg.decoder.backend, short_side=spec["short_side"],
                     strategy=cfg.decoder.strategy, threads=cfg.decoder.threads)
    return decode_frames_at(path, opener, frames)


def _scan_decode(spec: dict[str, Any], path: str, gaps: list[tuple[int, int]]) -> list[GapScan] | None:
    """A Ray task: :func:`pipeline.engine.base.decode_gaps` with the decoder
    the config names."""
    from pipeline.config import parse_config
    from pipeline.decode import open_decoder
    from pipeline.engine.base import decode_gaps

    cfg = parse_config(spec["config"])
    opener = partial(open_decoder, backend=cfg.decoder.backend, short_side=spec["short_side"],
                     strategy=cfg.decoder.strategy, threads=cfg.decoder.threads)
    return decode_gaps(path, opener, gaps)


def _decode_with_timeout(path: str, opener: Callable, sampling, chunk_size: int,
                         timeout_s: float) -> Iterator[FrameBatch | EmbeddedInput]:
    """``decode_input`` in a helper thread, so a stalled decode is cut off after
    ``timeout_s`` like in the local engine. Yields chunks, then the result."""
    items: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()

    def emit(batch: FrameBatch) -> bool:
        while not stop.is_set():
            try:
                items.put(batch, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        result = decode_input(path, opener, sampling, chunk_size, emit)
        if not stop.is_set():
            items.put(result)

    threading.Thread(target=work, name="scenetag-decode", daemon=True).start()
    while True:
        try:
            item = items.get(timeout=timeout_s)
        except queue.Empty:
            stop.set()  # the thread may be stuck in C; its late output is dropped
            yield EmbeddedInput.failed(path, DecodeTimeout(
                f"decoding stalled for {timeout_s:g} s (timeout)"))
            return
        yield item
        if isinstance(item, EmbeddedInput):
            return


def _chunk_row(position: int, chunk: int, batch: FrameBatch) -> dict[str, np.ndarray]:
    return {"position": np.array([position]), "chunk": np.array([chunk]),
            "indices": _one(batch.indices.astype(np.int64)),
            "times": _one(batch.times_s.astype(np.float64)),
            "images": _one(np.ascontiguousarray(batch.images, np.uint8)),
            "meta": np.array([""])}


def _end_row(position: int, chunks: int, result: EmbeddedInput) -> dict[str, np.ndarray]:
    meta = {"chunks": chunks, "decode_s": result.decode_s,
            "info": dataclasses.asdict(result.info) if result.info else None,
            "stats": dataclasses.asdict(result.stats) if result.stats else None}
    if result.error is not None:
        meta.update(error=str(result.error), error_class=type(result.error).__name__)
    return {"position": np.array([position]), "chunk": np.array([-1]),
            "indices": _one(np.zeros(0, np.int64)), "times": _one(np.zeros(0, np.float64)),
            "images": _one(_NO_IMAGES), "meta": np.array([json.dumps(meta)])}


def _one(array: np.ndarray) -> np.ndarray:
    """A one-row tensor column holding ``array``."""
    return array[np.newaxis]


# --------------------------------------------------------------------------- embed (actors)


class _EmbedActor:
    """Loads the model once per actor; turns ``images`` into ``embeddings``."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from pipeline.config import parse_config
        from pipeline.embed import load_embedder

        m = parse_config(spec["config"]).model
        self.embedder = load_embedder(m.id, revision=m.revision, device=m.device,
                                      precision=m.precision, batch_size=m.batch_size,
                                      compile_model=m.compile, runtime=m.runtime)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        images = _rows_of(batch["images"])
        dim = self.embedder.dim
        vectors = [np.zeros((0, dim), np.float32)] * len(images)
        by_shape: dict[tuple, list[int]] = {}
        for row, img in enumerate(images):  # rows of one size share a model call
            if len(img):
                by_shape.setdefault(img.shape[1:], []).append(row)
        for rows in by_shape.values():
            out = self.embedder.embed_images(np.concatenate([images[r] for r in rows]))
            offset = 0
            for r in rows:
                vectors[r] = out[offset:offset + len(images[r])]
                offset += len(images[r])
        result = {k: v for k, v in batch.items() if k != "images"}
        result["embeddings"] = _column(vectors)
        return result


def _rows_of(column: Any) -> list[np.ndarray]:
    """A tensor column as per-row arrays (fixed-shape or ragged alike)."""
    return [np.asarray(x) for x in column]


def _column(arrays: list[np.ndarray]) -> np.ndarray:
    """Per-row arrays as one tensor column: stacked when they share a shape,
    else an object array, which Ray stores as a variable-shaped tensor."""
    if len({a.shape for a in arrays}) == 1:
        return np.stack(arrays)
    column = np.empty(len(arrays), dtype=object)
    column[:] = arrays
    return column


class _RefineActor(_EmbedActor):
    """Embeds edge refinement's frames: the model loaded once per session."""

    def embed(self, batches: list[FrameBatch]) -> list[np.ndarray]:
        from pipeline.engine.base import embed_in_batches

        return embed_in_batches(batches, self.embedder.embed_images, self.embedder.batch_size)


# --------------------------------------------------------------------------- driver


@dataclass
class _Slot:
    """What the driver has of one input so far."""

    chunks: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    meta: dict | None = None

    @property
    def done(self) -> bool:
        return self.meta is not None and len(self.chunks) >= self.meta["chunks"]


def _regroup(paths: Sequence[str], rows: Iterator[dict]) -> Iterator[EmbeddedInput]:
    """Collect rows per input and yield finished inputs in input order."""
    slots: dict[int, _Slot] = {}
    next_out = 0
    job_error = None
    for row in rows:
        position = int(row["position"])
        if position < 0:
            job_error = json.loads(row["meta"])["job_error"]
            break
        slot = slots.setdefault(position, _Slot())
        if row["meta"]:
            slot.meta = json.loads(row["meta"])
        else:
            slot.chunks[int(row["chunk"])] = (np.asarray(row["indices"]), np.asarray(row["times"]),
                                              np.asarray(row["embeddings"]))
        while next_out in slots and slots[next_out].done:
            yield _rebuild(paths[next_out], slots.pop(next_out))
            next_out += 1
    for position in range(next_out, len(paths)):  # never heard from: the worker died
        slot = slots.pop(position, None)
        if slot is not None and slot.done:
            yield _rebuild(paths[position], slot)
        else:
            reason = job_error or "a Ray worker failed repeatedly on this input"
            yield EmbeddedInput.failed(paths[position], PipelineError(f"ray: {reason}"))


def _rebuild(path: str, slot: _Slot) -> EmbeddedInput:
    """An :class:`EmbeddedInput` from the rows of one input."""
    meta = slot.meta or {}
    if meta.get("error") is not None:
        return EmbeddedInput.failed(path, _error_of(meta["error_class"], meta["error"]))
    info = VideoInfo(**meta["info"]) if meta.get("info") else None
    stats = DecodeStats(**meta["stats"]) if meta.get("stats") else None
    base = EmbeddedInput(path=path, info=info, stats=stats, decode_s=float(meta.get("decode_s", 0)))
    parts = [slot.chunks[k] for k in sorted(slot.chunks)]
    return collect_chunks(base, [p[0] for p in parts], [p[1] for p in parts],
                          [p[2] for p in parts])


def _error_of(class_name: str, message: str) -> PipelineError:
    """The worker's error, as the same :mod:`pipeline.types` class when known."""
    from pipeline import types

    cls = getattr(types, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, PipelineError)):
        cls = PipelineError
    return cls(message)
