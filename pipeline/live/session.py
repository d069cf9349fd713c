"""Several live streams at once, sharing one model.

Each stream has a reader thread (:class:`~pipeline.live.frames.StreamReader`)
and a queue; this module's loop, in the calling thread, takes frames from
every queue, embeds them in shared batches, and hands each stream its own
(:class:`~pipeline.live.stream.LiveStream`). A stream that fails ends alone;
the others go on. SIGINT and SIGTERM end every stream cleanly: open
segments close at the last frame and the final outputs are written; a
second Ctrl-C writes them without waiting for the network or the store
(see :class:`_signals`). A full disk ends each stream whose writes find
no room as ``error: disk full``, the others go on; a space reserve in the
output folder (:mod:`pipeline.live.reserve`) keeps room for the final
``summary.json`` of each and the run's index.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from pipeline.live.events import open_bus
from pipeline.live.frames import Backoff, LatestQueue, LiveFrame, StreamEnd, StreamReader
from pipeline.live.outputs import StreamOutputs
from pipeline.live.reserve import SpaceReserve
from pipeline.live.sources import LiveSource, check_openable, display_name
from pipeline.live.stream import LiveStream
from pipeline.live.tracker import rules_for
from pipeline.prepare import Provenance, StoreOptions, open_cache, run_classifier
from pipeline.report.folders import claim_name, safe_name
from pipeline.types import PipelineError, VideoResult

log = logging.getLogger(__name__)

STOP_GRACE_S = 2.0  # after a signal, how long readers get to hand in their last frames
FLUSH_EVERY_S = 10.0
CHUNK_WAIT_S = 1.0  # a store chunk's wait for another writer while streams play


@dataclass
class LiveOptions:
    """How live inputs run (``scenetag run`` flags in brackets).

    Attributes:
        force: treat file inputs as live too (``--live``).
        duration_s: stop each stream after this much stream time (``--duration``).
        events: JSON lines of segment events to this file, ``-`` for stdout (``--events``).
        events_url: POST each event to this URL (``--events-url``).
        flush_every_s: rewrite summary.json and timeline.png this often (``--flush-every``).
        reconnect: reopen dropped URLs and cameras (``--reconnect``).
        backoff: how reconnects are paced.
        queue_frames: sampled frames held per stream before the oldest are
            dropped (default: two model batches, at least 8).
        store_chunk: frames per write to the embedding store.
        handle_signals: end cleanly on SIGINT/SIGTERM (main thread only).
    """

    force: bool = False
    duration_s: float | None = None
    events: str | None = None
    events_url: str | None = None
    flush_every_s: float = FLUSH_EVERY_S
    reconnect: bool = False
    backoff: Backoff = field(default_factory=Backoff)
    queue_frames: int | None = None
    store_chunk: int = 64
    handle_signals: bool = True


class LiveRunOptions(StoreOptions, Protocol):
    """What :func:`run_live` reads of the run's options
    (:class:`pipeline.run.job.RunOptions` has these): the store, and how
    live inputs run (None: the defaults)."""

    live: LiveOptions | None


@dataclass
class LiveReport:
    results: list[VideoResult] = field(default_factory=list)
    signal: int | None = None  # the signal that ended the run


def run_live(sources: Sequence[LiveSource], config, out_dir: Path, options: LiveRunOptions, embedder, *,
             taken: set[str] = frozenset(), existing: dict | None = None) -> LiveReport:
    """Tag every live source until it ends (or a signal, or ``--duration``).

    Args:
        sources: the live inputs.
        config: the effective config.
        out_dir: where each stream's folder goes.
        options: the run's options (:class:`pipeline.run.job.RunOptions`): the
            store to keep frames in, and ``options.live``, the :class:`LiveOptions`.
        embedder: the loaded model.
        taken: folder names this run's other inputs use.
        existing: what ``out_dir`` holds (:func:`pipeline.run.inputs.existing_outputs`).

    Raises:
        PipelineError: an events sink cannot be opened (nothing started).
    """
    live: LiveOptions = options.live or LiveOptions()
    cache = open_cache(config, options, embedder, out_dir)  # as run_job opens it for files
    run = _Run(config, out_dir, live, embedder, run_classifier(config, embedder, cache),
               Provenance.of(embedder), open_bus(live.events, live.events_url), cache,
               SpaceReserve(out_dir))
    report = LiveReport()
    if config.output.top_frames:
        log.warning("--top-frames: not saved for live inputs (a stream cannot be read again for its "
                    "full-size frames)")
    names = live_names(sources, existing or {}, taken)
    try:
        _play(sources, names, run, report)
    finally:
        run.reserve.close()  # right before the index is written (the caller's next step)
    return report


def _play(sources: Sequence[LiveSource], names: dict[LiveSource, str], run: _Run, report: LiveReport) -> None:
    """Open every source, play the streams to their ends, into ``report``."""
    cache, live = run.cache, run.live
    streams = []
    for source in sources:
        try:
            check_openable(source)
        except PipelineError as ex:
            log.error("%s: %s", source.shown, ex)
            report.results.append(VideoResult(input_path=source.shown, name="", status="error",
                                              error=str(ex)))
            continue
        streams.append(_stream(source, names[source], run))
    caught: list[int] = []
    with _signals(run, caught, live.handle_signals):  # until every output is written
        try:
            _loop(streams, run)
        except BaseException as ex:  # the model failed (or a bug): what the streams have is kept
            run.stop.set()
            end = StreamEnd("stopped") if isinstance(ex, KeyboardInterrupt) else \
                StreamEnd("error", f"{type(ex).__name__}: {ex}")
            for s in streams:
                s.finish(end)
            raise
        finally:
            run.bus.close(run.hurry)
        if cache is not None and not run.hurry.is_set():  # index and compaction: the next run does them
            cache.finish()
    report.signal = caught[0] if caught else None
    report.results += [s.result() for s in streams]


@dataclass
class _Run:
    """What every stream of one run shares."""

    config: object
    out_dir: Path
    live: LiveOptions
    embedder: object
    classifier: object
    provenance: object
    bus: object
    cache: object
    reserve: SpaceReserve | None = None  # room for the final summaries and the index
    stop: threading.Event = field(default_factory=threading.Event)  # set: every stream ends
    hurry: threading.Event = field(default_factory=threading.Event)  # set: end without waiting (2nd Ctrl-C)
    wake: threading.Event = field(default_factory=threading.Event)  # set: some queue has an item


def _stream(source: LiveSource, name: str, run: _Run) -> LiveStream:
    """A stream's queue, reader thread (started), folder and model-side state."""
    config, live, embedder, classifier, p = run.config, run.live, run.embedder, run.classifier, run.provenance
    queue = LatestQueue(live.queue_frames or max(8, 2 * embedder.batch_size), run.wake,
                        drops=source.kind != "file")
    reader = StreamReader(source, config.sampling.to_sampling(), queue, run.stop,
                          short_side=embedder.input_size, read_timeout_s=config.decoder.timeout_s,
                          duration_s=live.duration_s, reconnect=live.reconnect, backoff=live.backoff)
    outputs = StreamOutputs(run.out_dir / name, classifier.names, config.output.formats, run.reserve)
    outputs.start()
    base = VideoResult(input_path=source.shown, name=name, sampling=config.sampling.to_sampling(),
                       model_id=p.model_id, model_family=p.family, model_revision=p.revision,
                       precision=p.precision, scoring_mode=classifier.mode, config_hash=config.hash())
    rules = rules_for(config, classifier.names, classifier.kinds)
    stream = LiveStream(source, name, reader, rules, outputs, run.bus, base,
                        store=_chunk_writer(run.cache, run) if run.cache else None,
                        store_chunk=live.store_chunk,
                        nsfw_enabled=bool(config.nsfw.labels), verdict_min_s=config.nsfw.verdict_min_s)
    stream.check_space()  # no room for its folder: it ends before it starts
    if not stream.ended:
        reader.start()
    return stream


def _loop(streams: list[LiveStream], run: _Run) -> None:
    """Feed the model from every stream until all have ended."""
    stopped_at: float | None = None
    while any(not s.ended for s in streams):
        run.wake.wait(0.2)
        run.wake.clear()
        while _one_round(streams, run.embedder, run.classifier):
            pass
        now = time.monotonic()
        for s in streams:
            if not s.ended and now - s.last_flush >= run.live.flush_every_s:
                s.flush_store()
                s.snapshot()
        if run.stop.is_set():
            stopped_at = stopped_at or now
            if now - stopped_at >= STOP_GRACE_S or run.hurry.is_set():  # a reader blocked in a read
                for s in streams:
                    s.finish(StreamEnd("stopped"))


def _one_round(streams: list[LiveStream], embedder, classifier) -> bool:
    """Take what every stream has queued (up to a batch), embed it, hand it out.
    Returns whether anything was done."""
    room = embedder.batch_size
    taken: list[tuple[LiveStream, list[LiveFrame]]] = []
    busy = False
    for s in streams:
        if s.ended:
            continue
        items = s.reader.queue.take(max(1, room))
        if items and not isinstance(items[0], LiveFrame):
            s.marker(items[0])
            busy = True
        elif items:
            taken.append((s, items))
            room -= len(items)
    by_shape: dict[tuple, list[tuple[LiveStream, list[LiveFrame]]]] = {}
    for s, frames in taken:  # streams of different sizes cannot share one array
        by_shape.setdefault(frames[0].image.shape, []).append((s, frames))
    for group in by_shape.values():
        images = np.stack([f.image for _, frames in group for f in frames])
        vectors = embedder.embed_images(images)
        offset = 0
        for s, frames in group:
            s.frames(frames, vectors[offset:offset + len(frames)], classifier)
            offset += len(frames)
    return busy or bool(taken)


class _signals:
    """SIGINT/SIGTERM, in the main thread, end the streams cleanly instead
    of raising: the first sets ``run.stop`` (every open segment closes, every
    output is written); a second SIGINT sets ``run.hurry`` as well: the same
    outputs, but nothing more is waited for (a reader blocked in a read,
    events still to be posted to ``--events-url``, chunks for a busy store,
    the store's index and compaction); a third raises KeyboardInterrupt:
    the run quits at once, its files as they stand (each one whole)."""

    def __init__(self, run: _Run, caught: list[int], enabled: bool):
        self.run, self.caught = run, caught
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.saved: dict[int, object] = {}

    def __enter__(self):
        if self.enabled:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.run.hurry.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a third Ctrl-C: quit now
        if self.caught and signum == signal.SIGINT:
            log.warning("%s again: finishing the outputs without waiting (events not yet posted and "
                        "embeddings not yet stored are dropped); once more quits at once", name)
            self.run.hurry.set()
        elif not self.caught:
            log.warning("%s: ending the live streams (their outputs are being completed; Ctrl-C again "
                        "to stop waiting for the network and the store)", name)
        self.caught.append(signum)
        self.run.stop.set()

    def __exit__(self, *exc) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)


def live_names(sources: Sequence[LiveSource], existing: dict, taken: set[str]) -> dict[LiveSource, str]:
    """A safe, unique folder name per live source, from its redacted address
    (as :func:`pipeline.run.inputs.output_names` does for files): a source keeps
    the folder whose ``summary.json`` names it; no other folder is taken."""
    owners = {k.lower(): v for k, v in existing.items()}
    used = {t.lower() for t in taken}
    return {source: claim_name(safe_name(display_name(source)) or "live", source.shown, used, owners)
            for source in sources}


def _chunk_writer(cache, run: _Run):
    """Keeps a stream's embeddings in the store a chunk at a time, as one
    stored input that grows (:meth:`pipeline.store.db.EmbeddingStore.append`):
    ``search`` finds a running stream's latest minute, and ``rescore``
    re-scores the whole stream. The input is named by the stream and its
    first frame's wall time, so each time a stream is tagged is an input.
    Returns whether the chunk was kept (a busy store: the stream goes on,
    and the chunk is offered again with the next).

    While streams play, or after a signal, a write waits ``CHUNK_WAIT_S``
    at most for another writer's lock (the model loop serves every stream);
    a stream's last write at its own end waits as ``--store-wait`` says.
    After a second Ctrl-C nothing more is written."""
    from pipeline.engine.base import EmbeddedInput
    from pipeline.store.db import COMPACT_MIN_FRAGMENTS

    def write(stream: LiveStream, chunk: list) -> bool:
        if run.hurry.is_set():
            return False
        wait_s = None if stream.ended and not run.stop.is_set() else CHUNK_WAIT_S  # its own end: --store-wait
        ident = f"{stream.source.shown}\n{stream.reader.first_wall_s}"
        embedded = EmbeddedInput(path=stream.source.shown, info=stream.stored_info(),
                                 indices=np.array([i for i, _, _ in chunk], np.int64),
                                 times_s=np.array([t for _, t, _ in chunk], np.float64),
                                 embeddings=np.stack([v for _, _, v in chunk]).astype(np.float32),
                                 stats=stream.stored_stats())
        chash = "live:" + hashlib.sha256(ident.encode("utf-8")).hexdigest()[:24]
        try:
            e = cache.embedder
            cache.store.append(embedded, chash=chash, sampling=cache.sampling,
                               sampling_desc=cache.sampling_desc, model_id=e.model_id, revision=e.revision,
                               precision=getattr(e, "precision_label", e.precision),
                               family=getattr(e, "family", None), wait_s=wait_s)
        except PipelineError as ex:
            log.warning("%s: embeddings not stored yet: %s", stream.source.shown, ex)
            return False
        cache.added += 1
        if cache.added % COMPACT_MIN_FRAGMENTS == 0:  # every append adds a fragment (DESIGN.md)
            cache._maintain(cache.store.compact)
        return True

    return write


__all__ = ["LiveOptions", "LiveReport", "live_names", "run_live"]
