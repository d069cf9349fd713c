"""Values passed between pipeline stages, and the error hierarchy.

Everything here is plain data: frozen dataclasses and numpy arrays. No stage
imports another stage; they only share these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# --------------------------------------------------------------------------- errors


class PipelineError(Exception):
    """Base of every error scenetag reports to a user as one line."""


class ConfigError(PipelineError):
    """The YAML config or a CLI override is invalid."""


class VideoOpenError(PipelineError):
    """An input could not be opened or holds no decodable video stream."""


class DecodeError(PipelineError):
    """An input opened but no usable frame could be decoded from it."""


class DecodeTimeout(DecodeError):
    """Decoding an input stalled past the configured per-input timeout."""


class ModelLoadError(PipelineError):
    """The model could not be loaded (missing, offline, unsafe weights, ...)."""


class StoreError(PipelineError):
    """The embedding store is missing, corrupt or incompatible."""


def describe_error(error: BaseException) -> str:
    """One line naming the exception's type unless its message says enough."""
    text = " ".join(str(error).split())
    if isinstance(error, OSError) and error.strerror:
        return error.strerror  # the file name is often a temporary's: it would only confuse
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# --------------------------------------------------------------------------- media


@dataclass(frozen=True)
class VideoInfo:
    """Metadata probed from a container without decoding the whole stream.

    ``width``/``height`` are the *displayed* size, i.e. after applying
    ``rotation``. ``duration_s`` and ``avg_fps`` may be ``None`` when the
    container does not say.
    """

    path: str
    container: str
    codec: str
    width: int
    height: int
    duration_s: float | None
    avg_fps: float | None
    frame_count: int | None
    rotation: int = 0
    start_time_s: float = 0.0
    pix_fmt: str = ""
    bit_rate: int | None = None
    is_image: bool = False
    # FFmpeg's guess of the stream's base rate (``r_frame_rate``): a VFR clip's
    # nominal 23.976 while its average is 16.05. None when not known.
    nominal_fps: float | None = None


@dataclass(frozen=True)
class Sampling:
    """Which frames to keep. Exactly one of the three rules is set.

    ``every_n_frames`` counts decoded frames in presentation order;
    ``every_seconds`` and ``target_fps`` select by presentation timestamp, so
    variable-frame-rate video gets frames at true times.
    """

    every_n_frames: int | None = None
    every_seconds: float | None = None
    target_fps: float | None = None
    max_frames: int | None = None

    @property
    def interval_s(self) -> float | None:
        """The time step between kept frames, when sampling is time based."""
        if self.every_seconds is not None:
            return self.every_seconds
        if self.target_fps is not None:
            return 1.0 / self.target_fps
        return None

    def describe(self) -> str:
        if self.every_n_frames is not None:
            return f"every {self.every_n_frames} frames"
        return f"every {self.interval_s:g} s"


@dataclass(frozen=True)
class Frame:
    """One sampled frame.

    Attributes:
        index: 0-based position of the frame in presentation order.
        pts_s: presentation time in seconds, relative to the stream start.
        image: H x W x 3 RGB uint8, upright (rotation metadata applied).
    """

    index: int
    pts_s: float
    image: np.ndarray


@dataclass(frozen=True)
class FrameBatch:
    """Frames stacked for the model. ``images`` is N x H x W x 3 uint8."""

    indices: np.ndarray
    times_s: np.ndarray
    images: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class GapScan:
    """Every frame of one gap between two samples, decoded once (edge refinement).

    Attributes:
        lo, hi: the gap's bracketing frames (both included in the scan).
        indices: the frames decoded, ascending (an undecodable one is absent).
        thumbs: their fingerprints, N x 24 x 32 x 3 uint8
            (:func:`pipeline.decode.prints.thumbnail`).
        frames: full frames kept for scoring (the ones around the gap's
            largest picture changes), at the model's input size.
        decoded: frames decoded to get here (walking from a keyframe included).
    """

    lo: int
    hi: int
    indices: np.ndarray
    thumbs: np.ndarray
    frames: FrameBatch | None = None
    decoded: int = 0


@dataclass(frozen=True)
class GapEvidence:
    """What a gap's pixels say, for any label (:mod:`pipeline.analysis.cuts`).

    Attributes:
        lo, hi: the gap's bracketing frames.
        cuts: frames right after the gap's clear picture jumps (the first
            frame of a new picture), strongest first; empty when none stands
            out of the gap's noise.
        clear: ``cuts`` holds exactly one cut, and every frame before it
            keeps the colours of frame ``lo`` and every frame from it on
            those of frame ``hi`` (a hard cut between two steady pictures).
        still: in a clear gap, whether the frames before the cut (and the
            frames from it on) are the very picture of frame ``lo`` (of
            ``hi``), up to compression noise: only a still side's frames
            may be taken to score as its sample does.
        times: ``(frame, pts_s)`` of the frames on either side of each cut,
            as the scan decoded them: an edge pinned at a cut with one of
            its two frames left unscored takes that frame's time from here
            (empty in evidence stored before format 5).
    """

    lo: int
    hi: int
    cuts: tuple[int, ...] = ()
    clear: bool = False
    still: tuple[bool, bool] = (False, False)
    times: tuple[tuple[int, float], ...] = ()

    def time_of(self, frame: int) -> float | None:
        """The PTS of ``frame`` when the scan recorded it, else None."""
        return next((t for i, t in self.times if i == frame), None)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Segment:
    """A detected interval where a label is present."""

    label: str
    kind: str  # "tag" or "nsfw"
    start_s: float
    end_s: float
    peak: float
    mean: float
    # Set by edge refinement (pipeline.analysis.edges): the segment's first and last
    # frame (presentation-order indices), None for an edge left at its coarse
    # time; ``refined`` says which edges were pinned: both, start, end, none.
    start_frame: int | None = None
    end_frame: int | None = None
    refined: str = "none"

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class Interval:
    """A half-open run of sample positions ``[start, stop)`` judged present."""

    start: int
    stop: int


@dataclass
class DecodeStats:
    """What the decoder saw while streaming: damage is reported, not fatal."""

    frames_decoded: int = 0
    frames_sampled: int = 0
    corrupt_packets: int = 0
    strategy: str = "exact"
    notes: list[str] = field(default_factory=list)
    # Frames in the whole stream, when the pass reached its end (edge
    # refinement's bound for a segment that runs to the last frame).
    frames_total: int | None = None


@dataclass(frozen=True)
class LabelTrack:
    """Per-frame scores of one label over a video, before and after smoothing."""

    name: str
    kind: str  # "tag" or "nsfw"
    raw: np.ndarray
    smoothed: np.ndarray
    threshold: float
    exit_threshold: float


@dataclass(frozen=True)
class LabelTotals:
    """Per-label summary of one video ("how many frames contain cats")."""

    label: str
    kind: str
    seconds_present: float
    fraction: float
    frames_over_threshold: int
    max_score: float


@dataclass(frozen=True)
class RefineSummary:
    """What edge refinement did for one input (``summary.json``, ``frames.csv``).

    Attributes:
        indices, times_s: the refinement frames scored, ascending.
        scores: their raw scores, frames x labels, in track order.
        frames_decoded: frames decoded this run to reach them (walking
            forward from keyframes included); ``frames_embedded``: frames
            embedded this run; ``frames_kept``: ones taken from the store.
        edges: segment edges; ``edges_pinned``: those pinned to a frame, of
            which ``edges_by_cut`` on cut evidence (the frame before a clear
            cut taken from its gap's pixels, not scored; :mod:`pipeline.analysis.cuts`),
            the rest by bisection on scores alone.
    """

    indices: np.ndarray
    times_s: np.ndarray
    scores: np.ndarray
    frames_decoded: int = 0
    frames_embedded: int = 0
    frames_kept: int = 0
    edges: int = 0
    edges_pinned: int = 0
    edges_by_cut: int = 0


@dataclass
class VideoResult:
    """Everything known about one input after a run, success or failure.

    On failure ``status`` is ``"error"``, ``error`` holds the one-line reason
    and the array fields are empty.
    """

    input_path: str
    name: str
    status: str = "ok"
    error: str | None = None
    info: VideoInfo | None = None
    sampling: Sampling | None = None
    frame_indices: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    times_s: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))
    tracks: list[LabelTrack] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    totals: list[LabelTotals] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    nsfw_verdict: str = "n/a"  # "safe", "unsafe" or "n/a"
    model_id: str = ""
    model_family: str = ""  # clip, siglip, siglip2 ("" when unknown: a store made before it was kept)
    model_revision: str | None = None
    precision: str = ""
    runtime: str = ""  # torch, openvino, onnxruntime ("" when unknown: a store made before it was kept)
    model_auto: dict | None = None  # how runtime: auto chose the runtime and precision (None: it did not)
    scoring_mode: str = ""  # the rule the scores came from: softmax, binary or sigmoid
    config_hash: str = ""
    wall_time_s: float = 0.0
    decode: DecodeStats | None = None
    refine: RefineSummary | None = None  # None: refinement off (or nothing to refine)
    # With shots.enabled: the input's shots (pipeline.report.timeline_files.ShotRow) and
    # technical cues (pipeline.analysis.cues.Cue); None: not looked for.
    shots: list | None = None
    cues: list | None = None
