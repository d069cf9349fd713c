"""Progress bars for a run: frames done / expected with an ETA, for the run
and for the input being embedded; or, where frames are embedded out of the
driver's sight (Ray), inputs done / all with an ETA.

The expected count comes from container metadata (duration, frame count) and
the sampling rule. Metadata lies (a 28 KB file can claim 3,000 years), so the
count is a display hint only: nothing is sized from it, a finished input's
real count replaces it, and an input whose length is unknown shows no total.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.types import Sampling, VideoInfo

_EPS = 1e-6


def expected_frames(info: VideoInfo | None, sampling: Sampling) -> int | None:
    """How many frames ``sampling`` should keep from the input ``info``
    describes, or ``None`` when the container does not say enough.

    Time rules keep one frame per interval from 0 up to the duration; frame
    rules one in ``every_n_frames`` of the frame count (else duration x fps);
    either is capped by ``max_frames``. A still image is one frame.
    """
    if info is None:
        return None
    if info.is_image:
        return 1
    count = _uncapped(info, sampling)
    if count is None:
        return sampling.max_frames  # at most that many, whatever the length
    return min(count, sampling.max_frames) if sampling.max_frames else count


def _uncapped(info: VideoInfo, sampling: Sampling) -> int | None:
    duration = info.duration_s if info.duration_s and math.isfinite(info.duration_s) else None
    fps = info.avg_fps if info.avg_fps and math.isfinite(info.avg_fps) and info.avg_fps > 0 else None
    frames = info.frame_count if info.frame_count and info.frame_count > 0 else None
    if frames is None and duration and fps:
        frames = max(1, round(duration * fps))
    if sampling.interval_s is not None:
        return _time_rule(sampling.interval_s, duration, fps, frames)
    if frames is None:
        return None
    return math.ceil(frames / (sampling.every_n_frames or 1))


def _time_rule(interval_s: float, duration: float | None, fps: float | None,
               frames: int | None) -> int | None:
    """A time rule keeps the first frame of every interval that has one
    (``PtsSampler``). At a constant rate with ``r = fps x interval`` frames
    per interval, every interval has a frame when ``r > 1``, and every
    frame has its own interval otherwise."""
    if frames is not None and fps is not None:
        per_interval = fps * interval_s
        if per_interval <= 1:
            return frames
        return math.floor((frames - 1) / per_interval + _EPS) + 1
    if duration is None:
        return None
    return max(1, math.ceil(duration / interval_s - _EPS))


@dataclass
class _Input:
    expected: int | None = None
    done: int = 0
    opened: bool = False
    finished: bool = False
    image: bool = False  # a still: too quick to get the input bar


class RunProgress:
    """Two tqdm bars: the run (frames done / expected over every input, with
    its ETA) and the current input (its frames / expected, with its ETA).

    Engines report through :meth:`started` and :meth:`embedded`; the run
    calls :meth:`finished` for every result, decoded or read from the store.
    Disabled, every method does nothing and tqdm is not imported.

    Args:
        paths: the inputs to process.
        sampling: the run's sampling rule.
        enabled: draw the bars at all.
        file: where tqdm draws (default stderr; tests pass a buffer).
        disable: tqdm's flag; ``None`` hides the bars when the stream is not
            a terminal.
        resumed: inputs of the run ``--resume`` skips (not in ``paths``):
            counted as done in the run bar's ``inputs done/all``.
        by_input: one bar of inputs done / all (with its ETA), moved only by
            :meth:`finished`: for an engine whose frames are embedded where
            the driver does not see them (Ray).
    """

    def __init__(self, paths: Sequence[str], sampling: Sampling, *, enabled: bool = True,
                 file=None, disable: bool | None = None, resumed: int = 0, by_input: bool = False) -> None:
        self.sampling = sampling
        self.inputs = {path: _Input() for path in paths}
        self.resumed = resumed
        self.enabled = enabled and bool(paths)
        self.by_input = by_input
        self.current: str | None = None
        self.run_bar = self.input_bar = None
        if self.enabled and by_input:
            from tqdm import tqdm

            self.run_bar = tqdm(total=len(paths) + resumed, initial=resumed, unit="input", desc="scenetag",
                                leave=False, file=file, disable=disable, position=0)
        elif self.enabled:
            from tqdm import tqdm

            self.run_bar = tqdm(total=None, unit="frame", desc="scenetag", leave=False,
                                file=file, disable=disable, position=0)
            self.input_bar = tqdm(total=None, unit="frame", desc="input", leave=False,
                                  file=file, disable=disable, position=1)
            self._show_inputs()

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for bar in (self.input_bar, self.run_bar):
            if bar is not None:
                bar.close()

    @contextlib.contextmanager
    def stage(self, text: str) -> Iterator[None]:
        """Say on the run bar what the run does before its first frame
        (loading the model can take seconds): a terminal shows it at once."""
        if self.run_bar is None:
            yield
            return
        self.run_bar.set_description_str(f"scenetag: {text}", refresh=True)
        try:
            yield
        finally:
            self.run_bar.set_description_str("scenetag", refresh=True)

    def started(self, path: str, info: VideoInfo | None) -> None:
        """An engine opened ``path``: its expected count becomes known."""
        if not self.enabled or self.by_input or path not in self.inputs:
            return
        slot = self.inputs[path]
        slot.expected, slot.opened = expected_frames(info, self.sampling), True
        slot.image = info is not None and info.is_image
        self._update_run_total()
        if not slot.image and (self.current is None or self.inputs[self.current].finished):
            self._show_input(path)

    def embedded(self, path: str, frames: int) -> None:
        """``frames`` more frames of ``path`` went through the model."""
        if not self.enabled or self.by_input or path not in self.inputs:
            return
        slot = self.inputs[path]
        slot.done += frames
        self.run_bar.update(frames)
        if path == self.current:
            self.input_bar.update(frames)
        if slot.expected is not None and slot.done > slot.expected:
            slot.expected = slot.done  # the metadata undercounted
            self._update_run_total()

    def finished(self, path: str, frames: int) -> None:
        """``path`` is done with ``frames`` frames (its real count)."""
        if not self.enabled or path not in self.inputs:
            return
        if self.by_input:
            if not self.inputs[path].finished:
                self.inputs[path].finished = True
                self.run_bar.update(1)
                self.run_bar.refresh()  # inputs are rare events: each one is drawn
            return
        slot = self.inputs[path]
        if slot.done < frames:  # came from the store: never went through the model
            self.run_bar.update(frames - slot.done)
        slot.done, slot.expected, slot.finished = frames, frames, True
        self._update_run_total()
        self._show_inputs()
        following = next((p for p, s in self.inputs.items()
                          if s.opened and not s.finished and not s.image), None)
        if following is not None and path == self.current:
            self._show_input(following)

    # ------------------------------------------------------------------ drawing

    def run_total(self) -> int | None:
        """Frames expected over the whole run: real counts of finished inputs,
        expected counts of opened ones, their mean for the rest."""
        known = [s.expected if s.expected is not None else s.done for s in self.inputs.values()
                 if s.finished or s.expected is not None]
        if not known:
            return None
        unknown = len(self.inputs) - len(known)
        return sum(known) + round(unknown * sum(known) / len(known))

    def _update_run_total(self) -> None:
        total = self.run_total()
        if total is not None:
            total = max(total, self.run_bar.n)
        if total != self.run_bar.total:
            self.run_bar.total = total
            self.run_bar.refresh()

    def _show_inputs(self) -> None:
        # drawn now: the last input's count must not wait for a frame that never comes
        done = sum(s.finished for s in self.inputs.values()) + self.resumed
        resumed = f" ({self.resumed} resumed)" if self.resumed else ""
        self.run_bar.set_postfix_str(f"inputs {done}/{len(self.inputs) + self.resumed}{resumed}")

    def _show_input(self, path: str) -> None:
        slot = self.inputs[path]
        self.current = path
        self.input_bar.reset()
        self.input_bar.total = slot.expected  # reset() keeps the old total when given None
        self.input_bar.n = slot.done
        self.input_bar.set_description_str(_short(Path(path).name), refresh=True)


def _short(name: str, width: int = 24) -> str:
    return name if len(name) <= width else name[:width - 1] + "…"
