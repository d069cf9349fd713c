"""What every engine shares: decoding one input into frame chunks, and the
per-input result handed back to ``run``.

Engines differ only in *where* decode and embed run (threads here, Ray
workers in ``engine/ray.py``); the per-input logic lives here once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from pipeline.types import (
    DecodeError,
    DecodeStats,
    FrameBatch,
    GapEvidence,
    GapScan,
    PipelineError,
    Sampling,
    VideoInfo,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddedInput:
    """One input after decode + embed: its frames' positions and vectors, or an error."""

    path: str
    info: VideoInfo | None = None
    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    times_s: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    stats: DecodeStats | None = None
    error: PipelineError | None = None
    decode_s: float = 0.0
    refine: RefineFrames | None = None  # frames edge refinement scored, beyond the sampled ones

    @classmethod
    def failed(cls, path: str, error: PipelineError) -> EmbeddedInput:
        return cls(path=path, error=error)


@dataclass(frozen=True)
class RefineFrames:
    """Frames decoded and embedded by edge refinement (:mod:`pipeline.analysis.edges`).

    Attributes:
        indices, times_s, embeddings: every refinement frame known for the
            input, ascending (kept in the store ones included).
        missing: indices asked for that no frame answered (past the end of
            the stream, or undecodable).
        decoded: frames this run decoded to reach them (walking forward from
            keyframes included, gap scans too); ``embedded``: frames this
            run embedded.
        gaps: what the pixels of each gap decoded whole said (cut evidence,
            :mod:`pipeline.analysis.cuts`), kept so edges pinned on it are pinned
            again from the store; ``scanned``: how many of them this run
            decoded.
        failed: why refining the input failed in this run, if it did (its
            edges stay at sample resolution; the warning has been given).
    """

    indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    times_s: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    embeddings: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    missing: frozenset[int] = frozenset()
    decoded: int = 0
    embedded: int = 0
    gaps: tuple[GapEvidence, ...] = ()
    scanned: int = 0  # gaps this run decoded whole
    failed: str | None = None

    def __len__(self) -> int:
        return len(self.indices)


class ProgressListener(Protocol):
    """What an engine tells a progress display (``pipeline.progress``)."""

    def started(self, path: str, info: VideoInfo | None) -> None:
        """``path`` was opened; ``info`` is its (unverified) metadata."""

    def embedded(self, path: str, frames: int) -> None:
        """``frames`` more frames of ``path`` went through the model."""


def decode_input(path: str, open_decoder: Callable, sampling: Sampling, chunk_size: int,
                 emit: Callable[[FrameBatch], bool],
                 opened: Callable[[VideoInfo], object] | None = None) -> EmbeddedInput:
    """Decode one input, handing frames to ``emit`` in chunks of ``chunk_size``.

    Returns the input's metadata (no frames: they went to ``emit``), or an
    :class:`EmbeddedInput` carrying the error. Never raises a
    :class:`PipelineError`; ``emit`` returning False stops early. ``opened``,
    when given, gets the metadata as soon as the input is open.
    """
    start = time.perf_counter()
    try:
        with open_decoder(path) as decoder:
            info = decoder.info
            if opened is not None:
                opened(info)
            buffer = []
            for frame in decoder.frames(sampling):
                buffer.append(frame)
                if len(buffer) >= chunk_size:
                    if not emit(_stack(buffer)):
                        break
                    buffer = []
            if buffer:
                emit(_stack(buffer))
            stats = decoder.stats
    except PipelineError as ex:
        return EmbeddedInput.failed(path, ex)
    except Exception as ex:  # a library bug must cost one input, not the batch
        log.debug("unexpected decode failure on %s", path, exc_info=True)
        return EmbeddedInput.failed(path, PipelineError(f"decode failed: {type(ex).__name__}: {ex}"))
    return EmbeddedInput(path=path, info=info, stats=stats, decode_s=time.perf_counter() - start)


def decode_frames_at(path: str, open_decoder: Callable, indices: list[int]) -> tuple[FrameBatch | None, int]:
    """The frames at ``indices`` of ``path`` (edge refinement), and how many
    frames reaching them took to decode. ``(None, n)`` when none of them
    exists (past the end); ``(None, -1)`` when the input cannot be read.
    Never raises (a failed probe only leaves edges at their coarse times)."""
    try:
        with open_decoder(path) as decoder:
            frames = decoder.frames_at(list(indices))
            decoded = decoder.stats.frames_decoded
    except PipelineError as ex:
        log.warning("%s: frames for edge refinement could not be read: %s", path, ex)
        return None, -1
    except Exception:  # a library bug costs this input's refinement, not the run
        log.warning("%s: frames for edge refinement could not be read", path, exc_info=True)
        return None, -1
    return (_stack(frames) if frames else None), decoded


def decode_gaps(path: str, open_decoder: Callable, gaps: list[tuple[int, int]]) -> list[GapScan] | None:
    """Every frame of each gap of ``path``, decoded once (edge refinement's
    cut evidence, :meth:`~pipeline.decode.base.Decoder.scan_gaps`); None when
    the input cannot be read. Never raises: refinement then bisects."""
    try:
        with open_decoder(path) as decoder:
            return decoder.scan_gaps(list(gaps))
    except PipelineError as ex:
        log.warning("%s: frames for edge refinement could not be read: %s", path, ex)
    except Exception:  # a library bug costs this input's cut evidence, not the run
        log.warning("%s: frames for edge refinement could not be read", path, exc_info=True)
    return None


def merge_batches(batches: list[FrameBatch]) -> FrameBatch | None:
    """One batch of the frames of ``batches``, ascending, each frame once."""
    batches = [b for b in batches if b is not None and len(b)]
    if not batches:
        return None
    indices = np.concatenate([b.indices for b in batches]).astype(np.int64)
    _, first = np.unique(indices, return_index=True)
    images = _same_size([_Still(b.images[k]) for b in batches for k in range(len(b))])
    return FrameBatch(indices=indices[first], times_s=np.concatenate([b.times_s for b in batches])[first],
                      images=images[first])


def split_wanted(indices: Sequence[int], have: FrameBatch | None) -> tuple[FrameBatch | None, list[int]]:
    """The frames of ``indices`` already in ``have`` (decoded by a gap scan),
    and the indices still to decode."""
    if have is None or not len(have):
        return None, sorted(set(map(int, indices)))
    held = {int(i): k for k, i in enumerate(have.indices)}
    rows = [held[i] for i in sorted(set(map(int, indices))) if i in held]
    rest = sorted({int(i) for i in indices} - set(held))
    part = FrameBatch(indices=have.indices[rows], times_s=have.times_s[rows], images=have.images[rows]) \
        if rows else None
    return part, rest


@dataclass(frozen=True)
class _Still:
    image: np.ndarray


def embed_in_batches(batches: list[FrameBatch], embed_images: Callable[[np.ndarray], np.ndarray],
                     batch_size: int) -> list[np.ndarray]:
    """Embed the frames of ``batches`` in model calls of up to ``batch_size``
    frames (frames of one size share calls); one array per batch."""
    out: list[np.ndarray | None] = [None] * len(batches)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, batch in enumerate(batches):
        by_shape.setdefault(batch.images.shape[1:], []).append(i)
    for group in by_shape.values():
        images = np.concatenate([batches[i].images for i in group])
        vectors = np.concatenate([embed_images(images[k:k + batch_size])
                                  for k in range(0, len(images), max(1, batch_size))])
        offset = 0
        for i in group:
            out[i] = vectors[offset:offset + len(batches[i])]
            offset += len(batches[i])
    return [v for v in out if v is not None]


def collect_chunks(meta: EmbeddedInput, indices: list[np.ndarray], times: list[np.ndarray],
                   embeddings: list[np.ndarray]) -> EmbeddedInput:
    """Join an input's embedded chunks into one result, in frame order."""
    if not indices:
        return replace(meta, error=DecodeError("no frames could be decoded"))
    all_times = np.concatenate(times).astype(np.float64)
    order = np.argsort(all_times, kind="stable")  # chunks may have been embedded out of order
    return replace(meta, indices=np.concatenate(indices).astype(np.int64)[order],
                   times_s=all_times[order],
                   embeddings=np.concatenate(embeddings).astype(np.float32)[order])


def _stack(frames: list) -> FrameBatch:
    images = _same_size(frames)
    return FrameBatch(indices=np.array([f.index for f in frames], np.int64),
                      times_s=np.array([f.pts_s for f in frames], np.float64),
                      images=images)


def _same_size(frames: list) -> np.ndarray:
    """Stack frames; a stream that changes resolution mid-way is padded/cropped
    to the first frame's size (the model crops the centre anyway)."""
    height, width = frames[0].image.shape[:2]
    out = np.zeros((len(frames), height, width, 3), np.uint8)
    for i, frame in enumerate(frames):
        img = frame.image[:height, :width]
        out[i, :img.shape[0], :img.shape[1]] = img
    return out
