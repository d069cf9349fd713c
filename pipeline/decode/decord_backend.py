"""Optional backend: decord (``pip install decord``).

decord 0.6.0 reads VFR timestamps correctly and applies rotation metadata
itself, but is reported to grow in memory on long or 4K videos. So frames are
fetched in small batches and the reader is dropped on exit.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator

import numpy as np

from pipeline.decode.base import Decoder, one_line, scaled_size, select_indices
from pipeline.decode.prints import JumpKeeper, thumbnail
from pipeline.types import DecodeError, DecodeStats, Frame, GapScan, Sampling, VideoOpenError

BATCH = 16  # frames per get_batch call: bounds memory, amortises seeking


def _import_decord():
    try:
        import decord
    except ImportError as ex:
        raise ImportError("decord is not installed: pip install decord") from ex
    return decord


class DecordDecoder(Decoder):
    """Decode with decord; frame times come from ``get_frame_timestamp``.

    Metadata (:attr:`info`) is probed with PyAV, which reports more fields;
    ``frame_count`` is decord's own frame count. decord always decodes
    exactly, so ``strategy`` is ignored (noted in :attr:`stats`), and
    ``Frame.index`` is decord's frame index (presentation order).
    """

    _notes: list[str] = []

    def _open(self) -> None:
        from pipeline.decode.av_open import probe

        decord = _import_decord()
        info = probe(self.path)  # raises VideoOpenError for non-video inputs
        # decord rotates frames itself, so it takes the displayed size.
        width, height = scaled_size(info.width, info.height, self.short_side)
        size = dict(width=width, height=height) if self.short_side else {}
        try:
            self._vr = decord.VideoReader(self.path, ctx=decord.cpu(0), **size)
            times = self._vr.get_frame_timestamp(range(len(self._vr)))[:, 0]
        except Exception as ex:  # decord raises bare DECORDError/RuntimeError
            self._vr = None
            raise VideoOpenError(f"decord cannot open {self.path}: {one_line(ex)}") from ex
        # decord already reports times relative to the stream start.
        self._times = np.asarray(times, np.float64)
        if info.container == "mpegts":
            self._notes = ["decord seeks inaccurately in MPEG-TS: frames may not match their times"]
        self._info = dataclasses.replace(info, frame_count=len(self._times))

    def _close(self) -> None:
        self._vr = None
        gc.collect()  # decord frees its native buffers only when the reader dies

    def frames(self, sampling: Sampling) -> Iterator[Frame]:
        if getattr(self, "_vr", None) is None:
            raise RuntimeError("decoder is not open; use it in a `with` block")
        self._stats = stats = DecodeStats(strategy="exact", notes=list(self._notes),
                                          frames_total=len(self._times))
        if self.strategy not in ("auto", "exact"):
            stats.notes.append(f"decord decodes exactly; strategy {self.strategy} ignored")
        wanted = select_indices(sampling, self._times)
        for start in range(0, len(wanted), BATCH):
            chunk = wanted[start : start + BATCH]
            for index, image in self._read(chunk, stats):
                stats.frames_sampled += 1
                yield Frame(index=index, pts_s=float(self._times[index]), image=image)
                if self._vr is None:  # closed while suspended
                    return
        # decord cannot tell decoded from sampled frames; report what it read.
        stats.frames_decoded = stats.frames_sampled
        if wanted and stats.frames_sampled == 0:
            raise DecodeError(f"no frame could be decoded from {self.path}")

    def frames_at(self, indices: list[int]) -> list[Frame]:
        """The frames at ``indices`` (decord's own frame indices, as
        :meth:`frames` reports them); ones past the end are left out."""
        if getattr(self, "_vr", None) is None:
            raise RuntimeError("decoder is not open; use it in a `with` block")
        wanted = sorted({i for i in indices if 0 <= i < len(self._times)})
        self._stats = stats = DecodeStats(strategy="exact")
        read = self._read(wanted, stats) if wanted else []
        stats.frames_decoded = stats.frames_sampled = len(read)  # decord does not say what it decoded
        return [Frame(index=i, pts_s=float(self._times[i]), image=image) for i, image in read]

    def scan_gaps(self, gaps: list[tuple[int, int]]) -> list[GapScan]:
        """Frames ``lo..hi`` of each gap read once, in batches: a thumbnail of
        every one, the full frame only of those around the gap's largest
        jumps (see :func:`pipeline.decode.pyav.scan_gaps`)."""
        if getattr(self, "_vr", None) is None:
            raise RuntimeError("decoder is not open; use it in a `with` block")
        self._stats = stats = DecodeStats(strategy="exact")
        out = []
        for lo, hi in sorted(set(gaps)):
            keeper = JumpKeeper(convert=lambda image: image)
            wanted = list(range(max(lo, 0), min(hi, len(self._times) - 1) + 1))
            read = 0
            for start in range(0, len(wanted), BATCH):
                for index, image in self._read(wanted[start:start + BATCH], stats):
                    keeper.add(index, thumbnail(image), image)
                    read += 1
            out.append(keeper.scan(lo, hi, lambda i: float(self._times[i]), read))
            stats.frames_decoded += read
        stats.frames_sampled = stats.frames_decoded
        return out

    def _read(self, chunk: list[int], stats: DecodeStats) -> list[tuple[int, np.ndarray]]:
        """Read a batch; on failure retry frame by frame, skipping bad ones."""
        try:
            return list(zip(chunk, self._vr.get_batch(chunk).asnumpy()[..., :3], strict=True))
        except Exception:  # one bad frame fails the whole batch
            pass
        good = []
        for i in chunk:
            try:
                good.append((i, self._vr[i].asnumpy()[..., :3]))
            except Exception as ex:
                stats.corrupt_packets += 1
                stats.notes.append(f"frame {i} unreadable: {one_line(ex)}")
        return good
