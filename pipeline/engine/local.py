"""Local engine: a decode thread feeds a bounded queue; the caller's thread embeds.

Decoding (PyAV releases the GIL in C) and inference (torch releases it too)
overlap, and the decode thread runs ahead into the next input while the
current one is still being embedded. The queue is bounded, so memory stays
flat however long the video: at most ``queue_size`` chunks of frames are in
flight.

Frames are batched across inputs, so a folder of photos is embedded in full
batches, not one image at a time.

A decode that stalls (no chunk for ``timeout_s``) is abandoned: its input is
reported as timed out and a fresh decode thread carries on with the next
input. Python cannot kill a thread, so the stalled one is told to stop and its
late output is ignored (items carry a generation number).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from pipeline.engine.base import (
    EmbeddedInput,
    ProgressListener,
    collect_chunks,
    decode_frames_at,
    decode_gaps,
    decode_input,
    embed_in_batches,
    merge_batches,
    split_wanted,
)
from pipeline.types import DecodeStats, DecodeTimeout, FrameBatch, GapScan, VideoInfo

log = logging.getLogger(__name__)

EmbedImages = Callable[[np.ndarray], np.ndarray]


@dataclass
class _Chunk:
    generation: int
    position: int
    batch: FrameBatch


@dataclass
class _Start:
    generation: int
    position: int
    info: VideoInfo


@dataclass
class _End:
    generation: int
    position: int
    result: EmbeddedInput


@dataclass
class _Pending:
    """An input whose frames are decoded but not all embedded yet."""

    batches: list[FrameBatch] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)
    indices: list[np.ndarray] = field(default_factory=list)
    times: list[np.ndarray] = field(default_factory=list)
    end: EmbeddedInput | None = None


REFINE_GROUP = 8  # inputs whose refinement rounds share model calls


class LocalEngine:
    """Decode in a background thread, embed in the calling thread.

    Args:
        open_decoder: builds a decoder for a path (backend, resize, strategy
            already chosen by the caller).
        sampling: which frames to keep.
        batch_size: the most frames per model call.
        timeout_s: a decode that yields nothing for this long is cut off.
        queue_size: chunks allowed in flight (backpressure); default: two
            batches' worth, at least 8.
        chunk_size: frames per decoded chunk; default
            :func:`default_chunk_size`. Smaller than a batch, so the model
            starts on an input's first frames instead of waiting for a full
            batch to be decoded.
        progress: told, in the calling thread, when an input is opened and
            how many of its frames each model call embedded.
    """

    def __init__(self, open_decoder: Callable, sampling, *, batch_size: int = 32,
                 timeout_s: float = 600.0, queue_size: int | None = None,
                 chunk_size: int | None = None, progress: ProgressListener | None = None) -> None:
        self.open_decoder = open_decoder
        self.progress = progress
        self.sampling = sampling
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.chunk_size = chunk_size or default_chunk_size(batch_size)
        # Room for two model batches of frames, so a batch can fill while the
        # previous one runs; never fewer than 8 chunks.
        self.queue_size = queue_size or max(8, -(-2 * batch_size // self.chunk_size))

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def refine_group_size(self) -> int:
        """Inputs whose edge refinement rounds share model calls: a few, so
        their frames fill larger calls while the decode thread runs ahead."""
        return REFINE_GROUP

    def probe(self, requests: Mapping[str, Sequence[int]], embed_images: EmbedImages,
              frames: Mapping[str, FrameBatch] | None = None) -> dict[str, EmbeddedInput]:
        """Decode the given frames of each input (edge refinement) and embed
        them all in full batches: ``{path: frames}`` -> ``{path: embedded}``
        (no frames where none of them exists); an input that cannot be read
        is left out. ``frames``: frames already decoded (by a gap scan),
        embedded as they are."""
        found: dict[str, FrameBatch] = {}
        decoded: dict[str, int] = {}
        for path, indices in requests.items():
            have, rest = split_wanted(indices, (frames or {}).get(path))
            batch, n = decode_frames_at(path, self.open_decoder, rest) if rest else (None, 0)
            if n < 0 and have is None:
                continue  # unreadable
            decoded[path] = max(n, 0)
            if (merged := merge_batches([have, batch])) is not None:
                found[path] = merged
        vectors = embed_in_batches(list(found.values()), embed_images, self.batch_size)
        out = {path: EmbeddedInput(path=path, stats=DecodeStats(frames_decoded=n))
               for path, n in decoded.items()}
        for (path, batch), vec in zip(found.items(), vectors):
            out[path] = replace(out[path], indices=batch.indices, times_s=batch.times_s, embeddings=vec)
        return out

    def scan(self, requests: Mapping[str, Sequence[tuple[int, int]]]) -> dict[str, list[GapScan]]:
        """Every frame of the given gaps of each input, decoded once (edge
        refinement's cut evidence); an input that cannot be read is left out."""
        scans = {path: decode_gaps(path, self.open_decoder, list(gaps)) for path, gaps in requests.items()}
        return {path: found for path, found in scans.items() if found is not None}

    def run(self, paths: Sequence[str], embed_images: EmbedImages) -> Iterator[EmbeddedInput]:
        """Yield one :class:`EmbeddedInput` per path, in input order."""
        items: queue.Queue = queue.Queue(maxsize=self.queue_size)
        state = _RunState()
        self._start_worker(paths, 0, items, state)
        try:
            yield from self._consume(paths, items, state, embed_images)
        finally:
            state.stop_generation()

    # ------------------------------------------------------------------ producer

    def _start_worker(self, paths: Sequence[str], start: int, items: queue.Queue,
                      state: _RunState) -> None:
        generation = state.new_generation()
        threading.Thread(target=self._produce, name=f"decode-{generation}", daemon=True,
                         args=(paths, start, items, state, generation)).start()

    def _produce(self, paths: Sequence[str], start: int, items: queue.Queue,
                 state: _RunState, generation: int) -> None:
        for position in range(start, len(paths)):
            if state.generation != generation:
                return
            state.started(position)

            def emit(batch: FrameBatch, position: int = position) -> bool:
                return _put(items, _Chunk(generation, position, batch), state, generation)

            def opened(info: VideoInfo, position: int = position) -> bool:
                return _put(items, _Start(generation, position, info), state, generation)

            result = decode_input(paths[position], self.open_decoder, self.sampling,
                                  self.chunk_size, emit, opened if self.progress else None)
            if not _put(items, _End(generation, position, result), state, generation):
                return

    # ------------------------------------------------------------------ consumer

    def _consume(self, paths, items, state, embed_images) -> Iterator[EmbeddedInput]:
        pending: dict[int, _Pending] = {}
        next_out = 0
        while next_out < len(paths):
            try:
                item = items.get(timeout=self.timeout_s)
            except queue.Empty:
                position = state.current
                log.warning("decode of %s stalled for %.0f s; skipping it", paths[position], self.timeout_s)
                pending[position] = _Pending(end=EmbeddedInput.failed(
                    paths[position], DecodeTimeout(f"decoding stalled for {self.timeout_s:g} s (timeout)")))
                self._start_worker(paths, position + 1, items, state)
                item = None
            if item is not None and item.generation == state.generation:
                self._accept(item, pending, paths)
            if self._should_flush(items, pending):
                embedded = _embed_pending(pending, embed_images)
                if self.progress:
                    for position, frames in embedded.items():
                        self.progress.embedded(paths[position], frames)
            while next_out in pending and _is_done(pending[next_out]):
                yield _finish(pending.pop(next_out))
                next_out += 1

    def _accept(self, item: _Start | _Chunk | _End, pending: dict[int, _Pending],
                paths: Sequence[str]) -> None:
        if isinstance(item, _Start):
            if self.progress:
                self.progress.started(paths[item.position], item.info)
            return
        slot = pending.setdefault(item.position, _Pending())
        if isinstance(item, _Chunk):
            slot.batches.append(item.batch)
        else:
            slot.end = item.result

    def _should_flush(self, items: queue.Queue, pending: dict[int, _Pending]) -> bool:
        waiting = sum(len(b) for slot in pending.values() for b in slot.batches)
        if waiting >= self.batch_size:
            return True
        # Greedy batching: never let the model idle while frames wait. When the
        # model is the slower stage, chunks pile up in the queue during each
        # call and batches grow to ``batch_size`` by themselves; when decode is
        # slower, embedding small batches early costs nothing.
        return waiting > 0 and items.empty()


def default_chunk_size(batch_size: int) -> int:
    """Frames per decoded chunk: a quarter batch, between 1 and 16 frames
    (64 for very large GPU batches), so the first model call starts early."""
    return max(1, min(batch_size, max(min(batch_size // 4, 16), batch_size // 16)))


class _RunState:
    """Shared between the consumer and decode threads (simple attributes;
    each is written by one side only)."""

    def __init__(self) -> None:
        self.generation = 0
        self.current = 0

    def new_generation(self) -> int:
        self.generation += 1
        return self.generation

    def stop_generation(self) -> None:
        self.generation += 1

    def started(self, position: int) -> None:
        self.current = position


def _put(items: queue.Queue, item: object, state: _RunState, generation: int) -> bool:
    """Blocking put that gives up when this worker has been superseded."""
    while state.generation == generation:
        try:
            items.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


def _embed_pending(pending: dict[int, _Pending], embed_images: EmbedImages) -> dict[int, int]:
    """Embed every waiting batch; returns frames embedded per input position."""
    counts: dict[int, int] = {}
    order = [(pos, b) for pos in sorted(pending) for b in pending[pos].batches]
    by_shape: dict[tuple[int, ...], list[tuple[int, FrameBatch]]] = {}
    for pos, batch in order:  # inputs of different sizes cannot share one array
        by_shape.setdefault(batch.images.shape[1:], []).append((pos, batch))
    for group in by_shape.values():
        vectors = embed_images(np.concatenate([b.images for _, b in group]))
        offset = 0
        for pos, batch in group:
            slot = pending[pos]
            slot.embeddings.append(vectors[offset:offset + len(batch)])
            slot.indices.append(batch.indices)
            slot.times.append(batch.times_s)
            offset += len(batch)
            counts[pos] = counts.get(pos, 0) + len(batch)
    for slot in pending.values():
        slot.batches.clear()
    return counts


def _is_done(slot: _Pending) -> bool:
    return slot.end is not None and not slot.batches


def _finish(slot: _Pending) -> EmbeddedInput:
    assert slot.end is not None
    if slot.end.error is not None:
        return slot.end
    return collect_chunks(slot.end, slot.indices, slot.times, slot.embeddings)

