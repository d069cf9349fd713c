"""One live stream's state on the model side: scores → trackers → rows,
events, segments and store chunks; and its result as it stands."""

from __future__ import annotations

import collections
import dataclasses
import logging
import time

import numpy as np

from pipeline.analysis import smooth
from pipeline.analysis.score import Classifier, score
from pipeline.config import LabelRules
from pipeline.decode.gaps import gap_note
from pipeline.live.events import EventBus, iso
from pipeline.live.frames import Gap, LiveFrame, Opened, StreamEnd, StreamReader
from pipeline.live.outputs import StreamOutputs
from pipeline.live.peaks import PeakPictures
from pipeline.live.sources import LiveSource
from pipeline.live.tracker import Event, LabelTracker
from pipeline.types import DecodeStats, LabelTrack, Segment, VideoInfo, VideoResult

log = logging.getLogger(__name__)

# Samples kept in memory for summary.json's totals and timeline.png (a day at
# one a second); older ones live on in frames.csv only, so memory stays bounded.
HISTORY_MAX = 86_400
STORE_BACKLOG = 16  # chunks held while the store is busy


class LiveStream:
    """What the model loop keeps per stream.

    Args:
        source: the input.
        name: its output folder's name.
        reader: the thread feeding it (its queue, counters).
        rules: per label, in the classifier's order.
        outputs: its folder.
        bus: where events go.
        base: a :class:`VideoResult` with the run's fixed fields (model,
            sampling, config hash), copied into every snapshot.
        store: ``(frames, vectors) -> None`` keeps a chunk of embeddings, or None.
    """

    def __init__(self, source: LiveSource, name: str, reader: StreamReader, rules: list[LabelRules],
                 outputs: StreamOutputs, bus: EventBus, base: VideoResult, *, store=None,
                 store_chunk: int = 64, nsfw_enabled: bool = False, verdict_min_s: float = 0.5):
        self.source, self.name, self.reader, self.rules = source, name, reader, rules
        self.outputs, self.bus, self.base, self.store = outputs, bus, base, store
        self.store_chunk, self.nsfw_enabled, self.verdict_min_s = store_chunk, nsfw_enabled, verdict_min_s
        self.trackers = [LabelTracker(r) for r in rules]
        self.peaks = PeakPictures(rules)  # thumbnails: a stream cannot be read again
        self._label_index = {(r.label, r.kind): i for i, r in enumerate(rules)}
        self.piece_start = 0  # history position where the current piece (no gap since) began
        self.indices: list[int] = []
        self.times: list[float] = []
        self.walls: list[float] = []
        self.raw: list[np.ndarray] = []
        self.smoothed: list[np.ndarray] = []  # final rows only
        self.forgotten = 0  # samples dropped from the front of the history lists
        self.segments: list[Segment] = []
        self.gaps: list[Gap] = []
        self.info: VideoInfo | None = None
        self.end: StreamEnd | None = None
        self.started = time.perf_counter()
        self.latencies: list[float] = []  # seconds from a frame's arrival to its nsfw event
        self._arrivals: collections.deque = collections.deque(maxlen=512)  # (time_s, seen_at)
        self._chunk: list[tuple[int, float, np.ndarray]] = []  # (index, time_s, vector) not yet stored
        self.last_flush = time.monotonic()

    @property
    def ended(self) -> bool:
        return self.end is not None

    # ------------------------------------------------------------------ input

    def marker(self, item: object) -> None:
        self._marker(item)
        self.check_space()

    def _marker(self, item: object) -> None:
        if isinstance(item, Opened):
            if self.info is None:
                self.info = item.info
            else:
                self._emit({"event": "reconnect", "attempt": item.attempt})
        elif isinstance(item, Gap):
            self._close_piece(until_s=item.start_s)
            self.gaps.append(item)
            self._emit({"event": "gap", "start_s": round(item.start_s, 3), "end_s": round(item.end_s, 3),
                        "reason": item.reason})
        elif isinstance(item, StreamEnd):
            self.finish(item)

    def frames(self, frames: list[LiveFrame], vectors: np.ndarray, classifier: Classifier) -> None:
        scores = score(classifier, vectors)
        for frame, row, vector in zip(frames, scores, vectors):
            if not self.times:
                self._emit({"event": "start", "first_frame_wall_time": iso(frame.wall_s)})
            self.indices.append(frame.index)
            self.times.append(frame.time_s)
            self.walls.append(frame.wall_s)
            self.raw.append(np.asarray(row, np.float64))
            self._arrivals.append((frame.time_s, frame.seen_at))
            self.peaks.sample(self.scored - 1, frame.time_s, frame.image)
            added = [tracker.add(frame.time_s, float(value)) for tracker, value in zip(self.trackers, row)]
            self._final_peaks()  # before the events: a close may need a sample just made final
            for label, (tracker, events) in enumerate(zip(self.trackers, added)):
                self._events(events)
                self.peaks.settled_before(label, tracker.unsettled_from)
            self._rows()
            self._chunk.append((frame.index, frame.time_s, vector))  # not the picture: a backlog stays small
            if len(self._chunk) % self.store_chunk == 0:  # after a failed write: a chunk later
                self.flush_store()
        self._forget()
        self.check_space()

    def check_space(self) -> None:
        """A write of the stream's outputs found the disk full: the stream
        ends there, as ``error: disk full (<file>)`` (its rows so far are
        kept), while the run's other streams go on."""
        if self.outputs.full and not self.ended:
            self.finish(StreamEnd("error", _disk_full(self.outputs.full)))

    @property
    def disk_full(self) -> bool:
        """Whether the stream ended for want of disk space (a failed input)."""
        return self.end is not None and self.outputs.full is not None

    def finish(self, end: StreamEnd) -> None:
        """The stream is over: settle every label, write the final outputs
        (the exports, the end event, ``summary.json`` last). A disk that
        fills on the way makes the end ``error: disk full``."""
        if self.ended:
            return
        self.reader.halt()  # a full disk ends the stream before its reader
        self._close_piece()
        self.end = self._full_end(end)
        self.flush_store()
        self.outputs.exports(self.result(), pictures=self.peaks.pictures_at)
        self.end = end = self._full_end(self.end)
        if end.error and not self.times:  # nothing came of it: the input failed
            log.error("%s: %s", self.source.shown, end.error)
            self.outputs.discard_tables()
        elif self.disk_full:  # it played, then the disk filled: a failed input, its rows kept
            log.error("%s: %s; the stream is ended (its tables keep the rows written before)",
                      self.source.shown, end.error)
        elif end.error:  # it played, then ended badly: what it gave is kept
            log.warning("%s: %s", self.source.shown, end.error)
        self._emit({"event": "end", "reason": end.reason, "error": end.error,
                    "frames_scored": self.scored, "dropped_frames": self.reader.queue.dropped})
        self.outputs.close()
        self.outputs.final_summary(self.result(), {"live": self.live_summary()})
        self.last_flush = time.monotonic()

    def _full_end(self, end: StreamEnd) -> StreamEnd:
        """``end``, or the disk-full end when a write found no room."""
        if self.outputs.full and not (end.error or "").startswith("disk full"):
            return StreamEnd("error", _disk_full(self.outputs.full))
        return end

    # ------------------------------------------------------------------ output

    def snapshot(self) -> None:
        self.outputs.snapshot(self.result(), {"live": self.live_summary()})
        self.last_flush = time.monotonic()
        self.check_space()

    def flush_store(self) -> None:
        """Hand the store the frames embedded since the last chunk; when it
        cannot take them (busy), they wait for the next try, up to
        ``STORE_BACKLOG`` chunks (older ones are then given up)."""
        if self._chunk and self.store is not None and not self.store(self, self._chunk):
            limit = STORE_BACKLOG * self.store_chunk
            if len(self._chunk) > limit:
                log.warning("%s: %d embeddings never reached the store", self.source.shown,
                            len(self._chunk) - limit)
                self._chunk = self._chunk[-limit:]
            return
        self._chunk = []

    def stored_info(self) -> VideoInfo | None:
        """The stream's info as the store keeps it (its duration so far)."""
        times = self.times
        return self._info(times[-1] + smooth.sample_step(np.asarray(times)) / 2 if times else None)

    def stored_stats(self) -> DecodeStats:
        return self._stats()

    def result(self) -> VideoResult:
        """The stream's result so far (segments: the closed ones)."""
        status, error = "ok", None
        if not self.times and self.end is not None:
            status, error = "error", self.end.error or f"no frame received ({self.end.reason})"
        elif self.disk_full:  # what it gave is kept, but the input failed
            status, error = "error", self.end.error
        times = np.asarray(self.times, np.float64)
        tracks = self._tracks()
        duration = float(times[-1]) + smooth.sample_step(times) / 2 if len(times) else None
        totals = [smooth.label_totals(t, [s for s in self.segments if s.label == t.name], duration)
                  for t in tracks]
        nsfw = [s for s in self.segments if s.kind == "nsfw"]
        return dataclasses.replace(
            self.base, status=status, error=error, info=self._info(duration),
            frame_indices=np.asarray(self.indices, np.int64), times_s=times, tracks=tracks,
            segments=sorted(self.segments, key=lambda s: (s.start_s, s.label)), totals=totals,
            tags=smooth.video_tags(totals) if status == "ok" else [],
            nsfw_verdict=smooth.nsfw_verdict(nsfw, self.nsfw_enabled, self.verdict_min_s)
            if status == "ok" else "n/a",
            wall_time_s=round(time.perf_counter() - self.started, 3), decode=self._stats())

    def live_summary(self) -> dict:
        q, r = self.reader.queue, self.reader
        lat = sorted(self.latencies)
        return {
            "state": "ended" if self.ended else "running",
            "ended_by": self.end.reason if self.end else None,
            "error": self.end.error if self.end else None,
            "first_frame_wall_time": iso(r.first_wall_s) if r.first_wall_s is not None else None,
            "stream_time_s": round(self.times[-1], 3) if self.times else 0.0,
            "frames_seen": r.frames_seen, "frames_scored": self.scored,
            "history_from_s": round(self.times[0], 3) if self.times else 0.0,
            "dropped_frames": q.dropped, "queue_max": q.maxsize, "queue_high_water": q.high_water,
            "reconnects": r.reconnects,
            "gaps": [{"start_s": round(g.start_s, 3), "end_s": round(g.end_s, 3), "reason": g.reason}
                     for g in self.gaps],
            "open_segments": self._open_segments(),
            "nsfw_event_latency_s": {"count": len(lat), "median": lat[len(lat) // 2] if lat else None,
                                     "max": lat[-1] if lat else None},
        }

    # ------------------------------------------------------------------ internals

    def _close_piece(self, until_s: float | None = None) -> None:
        """Settle every label; before a gap, spans end where the gap starts."""
        finished = [tracker.finish() for tracker in self.trackers]
        self._final_peaks()
        for events in finished:
            self._events([_until(e, until_s) for e in events])
        self._rows()
        self.trackers = [LabelTracker(r) for r in self.rules]
        self.piece_start = self.scored
        self.peaks.piece_ended()

    @property
    def scored(self) -> int:
        """Samples scored since the stream began."""
        return self.forgotten + len(self.times)

    def _rows(self) -> None:
        """frames.csv rows for samples every label has a final value for."""
        ready = self.piece_start + min(t.final_count for t in self.trackers)
        for i in range(self.forgotten + len(self.smoothed), ready):
            values = np.array([t.value(i - self.piece_start) for t in self.trackers])
            self.smoothed.append(values)
            j = i - self.forgotten
            self.outputs.frame_row(self.indices[j], self.times[j], iso(self.walls[j]), self.raw[j], values)

    def _final_peaks(self) -> None:
        """Hand the peak pictures every label's newly final values."""
        for label, tracker in enumerate(self.trackers):
            for position in range(self.peaks.done[label] - self.piece_start, tracker.final_count):
                self.peaks.final(label, self.piece_start + position, tracker.value(position))

    def _forget(self) -> None:
        """Keep the last HISTORY_MAX samples (only rows already written go)."""
        cut = min(len(self.times) - HISTORY_MAX, len(self.smoothed))
        if cut >= max(1, HISTORY_MAX // 10):  # in steps, not every sample
            for history in (self.indices, self.times, self.walls, self.raw, self.smoothed):
                del history[:cut]
            self.forgotten += cut

    def _events(self, events: list[Event]) -> None:
        for event in events:
            event = self._after_gap(event)
            data = event.as_dict()
            if event.event == "nsfw":
                data["latency_s"] = self._latency(event.start_s)
            if event.segment is not None:
                self.segments.append(event.segment)
                self.outputs.segment_row(event.segment)
                self.peaks.closed(self._label_index[(event.label, event.kind)], event.segment)
            self._emit(data)

    def _after_gap(self, event: Event) -> Event:
        """A span reaching back into the last gap starts where the gap ends:
        a gap is never tagged."""
        t0 = self.gaps[-1].end_s if self.gaps else 0.0
        if event.start_s >= t0:
            return event
        segment = event.segment and dataclasses.replace(event.segment, start_s=t0)
        return dataclasses.replace(event, start_s=t0, segment=segment)

    def _latency(self, start_s: float) -> float | None:
        """Seconds since the first frame of the run that just fired arrived."""
        arrived = next((seen for t, seen in self._arrivals if t >= start_s - 1e-9), None)
        if arrived is None:
            return None
        latency = time.time() - arrived
        self.latencies.append(round(latency, 4))
        return round(latency, 4)

    def _emit(self, event: dict) -> None:
        event = {**event, "time_s": round(self.times[-1], 3) if self.times else 0.0}
        self.outputs.event(self.bus.emit(event, stream=self.name, source=self.source.shown))

    def _tracks(self) -> list[LabelTrack]:
        raw = np.array(self.raw, np.float64).reshape(len(self.raw), len(self.rules))
        done = np.array(self.smoothed, np.float64).reshape(len(self.smoothed), len(self.rules))
        smoothed = np.concatenate([done, raw[len(done):]])  # the last few are not smoothed yet
        return [LabelTrack(r.label, r.kind, raw[:, i], smoothed[:, i], r.enter, r.exit)
                for i, r in enumerate(self.rules)]

    def _open_segments(self) -> list[dict]:
        out = []
        for tracker in self.trackers:
            for start, state in tracker.states.items():
                if state in ("open", "confirmed", "provisional"):
                    out.append({"label": tracker.rules.label, "kind": tracker.rules.kind,
                                "start_s": round(start, 3), "state": state})
        return out

    def _info(self, duration: float | None) -> VideoInfo | None:
        if self.info is None:
            return None
        return dataclasses.replace(self.info, duration_s=duration, frame_count=self.reader.frames_seen)

    def _stats(self) -> DecodeStats:
        notes = [gap_note(g.start_s, g.end_s, g.reason) for g in self.gaps]
        if self.reader.queue.dropped:
            notes.append(f"dropped {self.reader.queue.dropped} sampled frames: the model fell behind")
        return DecodeStats(frames_decoded=self.reader.frames_seen, frames_sampled=self.scored,
                           corrupt_packets=self.reader.corrupt, strategy="live", notes=notes)



def _disk_full(where: str) -> str:
    return f"disk full ({where})"


def _until(event: Event, end_s: float | None) -> Event:
    """``event`` with its span ending by ``end_s`` (None: as it is)."""
    if end_s is None or event.end_s is None or event.end_s <= end_s:
        return event
    segment = event.segment and dataclasses.replace(event.segment, end_s=max(end_s, event.segment.start_s))
    return dataclasses.replace(event, end_s=max(end_s, event.start_s), segment=segment)
