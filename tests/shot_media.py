"""Generated clips with known shots, for the shot detector and its peer.

A clip is a list of parts: :class:`Take` (a photo seen through a moving
window: still, a pan, a fast pan, a zoom or a handheld shake), and
transitions between takes: a hard cut (two takes in a row), :class:`Fade`
(fade out, black or white frames, fade in) and :class:`Flash` (white frames
inside a take, after which the take goes on). The photos ship with
scikit-image and matplotlib, so every shot is natural-looking content, not
flat colour. :func:`make_shot_clip` writes the clip with PyAV's libx264 and
returns the truth: the frame each take starts at, where each fade is
darkest, where the flashes are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
          "retina", "grace_hopper")
_CACHE: dict[str, np.ndarray] = {}


def photo(name: str) -> np.ndarray:
    """RGB uint8 of a bundled sample photo."""
    if name not in _CACHE:
        if name == "grace_hopper":
            import matplotlib.cbook

            with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
                _CACHE[name] = np.asarray(Image.open(fh).convert("RGB"))
        else:
            import skimage.data

            _CACHE[name] = np.ascontiguousarray(getattr(skimage.data, name)()[..., :3])
    return _CACHE[name]


@dataclass(frozen=True)
class Take:
    """``frames`` frames of ``photo`` seen through a window that moves as ``motion`` says."""

    photo: str
    frames: int
    motion: str = "pan"  # still | pan | fast_pan | zoom | shake


@dataclass(frozen=True)
class Fade:
    """Between two takes: the last ``out`` frames of the first fade to ``colour``,
    ``hold`` frames of it, the first ``into`` frames of the next fade up from it."""

    out: int = 8
    hold: int = 4
    into: int = 8
    colour: int = 0  # 0 black, 255 white


@dataclass(frozen=True)
class Flash:
    """``frames`` white frames at ``at`` frames into the take before it
    (the take goes on after it where it would have been)."""

    at: int
    frames: int = 1


@dataclass
class Truth:
    cuts: list[int] = field(default_factory=list)  # first frame of each take after a hard cut
    fades: list[tuple[int, int]] = field(default_factory=list)  # (first, end) of each held colour run
    flashes: list[tuple[int, int]] = field(default_factory=list)  # (first, end) of each flash
    frames: int = 0

    @property
    def fade_cuts(self) -> list[int]:
        """Where the detector puts a fade's cut: the middle of the held run."""
        return [(a + b) // 2 for a, b in self.fades]

    @property
    def transitions(self) -> list[int]:
        return sorted(self.cuts + self.fade_cuts)


def take_frames(take: Take, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """The take's frames, ``size`` = (width, height)."""
    img = photo(take.photo)
    h, w = img.shape[:2]
    rng = np.random.default_rng(seed)
    aspect = size[0] / size[1]
    cw = int(min(w * 0.6, h * 0.6 * aspect))
    ch = int(cw / aspect)
    out = []
    for k in range(take.frames):
        u = k / max(take.frames - 1, 1)
        scale = 1.0
        if take.motion == "pan":
            x, y = u * (w - cw) * 0.5, (h - ch) * 0.3
        elif take.motion == "fast_pan":  # about a twentieth of the width per frame, back and forth
            x, y = (w - cw) * (0.5 + 0.5 * np.sin(k * 0.35)), (h - ch) * 0.4
        elif take.motion == "zoom":
            scale = 1.0 - 0.45 * u
            x, y = (w - cw * scale) / 2, (h - ch * scale) / 2
        elif take.motion == "shake":
            x = (w - cw) / 2 + rng.normal(0, w * 0.01)
            y = (h - ch) / 2 + rng.normal(0, h * 0.01)
        else:
            x, y = (w - cw) / 2, (h - ch) / 2
        box = (x, y, x + cw * scale, y + ch * scale)
        box = (max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3]))
        crop = Image.fromarray(img).resize(size, Image.BILINEAR, box=box)
        out.append(np.asarray(crop))
    return out


def render(parts: list, size: tuple[int, int] = (320, 240)) -> tuple[list[np.ndarray], Truth]:
    """Every frame of the clip ``parts`` describe, and its truth."""
    frames: list[np.ndarray] = []
    truth = Truth()
    pending_fade: Fade | None = None
    for n, part in enumerate(parts):
        if isinstance(part, Take):
            shot = take_frames(part, size, seed=n)
            if pending_fade is not None:
                f = pending_fade
                for k in range(min(f.into, len(shot))):
                    a = (k + 1) / (f.into + 1)
                    shot[k] = _mix(shot[k], f.colour, a)
                pending_fade = None
            elif frames:
                truth.cuts.append(len(frames))
            frames += shot
        elif isinstance(part, Fade):
            for k in range(part.out):
                i = len(frames) - part.out + k
                frames[i] = _mix(frames[i], part.colour, 1 - (k + 1) / (part.out + 1))
            truth.fades.append((len(frames), len(frames) + part.hold))
            frames += [np.full_like(frames[-1], part.colour) for _ in range(part.hold)]
            pending_fade = part
        elif isinstance(part, Flash):
            i = len(frames) - _last_take_frames(parts, n) + part.at
            for k in range(part.frames):
                frames[i + k] = np.full_like(frames[i + k], 250)
            truth.flashes.append((i, i + part.frames))
    truth.frames = len(frames)
    return frames, truth


def _last_take_frames(parts: list, n: int) -> int:
    return next(p.frames for p in reversed(parts[:n]) if isinstance(p, Take))


def _mix(frame: np.ndarray, colour: int, alpha: float) -> np.ndarray:
    """``alpha`` of the picture over ``colour`` (1: the picture, 0: the colour)."""
    return np.clip(frame.astype(np.float32) * alpha + colour * (1 - alpha), 0, 255).astype(np.uint8)


def write_frames(path: str | Path, frames: list[np.ndarray], fps: int = 25, crf: int = 20,
                 audio: bool = False) -> str:
    """Encode ``frames`` as H.264 (yuv420p, GOP 50, B-frames); with ``audio``, an
    AAC sine track as long as the video."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": str(crf), "g": "50", "threads": "1"}
        sound = out.add_stream("aac", rate=48000) if audio else None
        if sound is not None:
            sound.layout = "mono"
        for i, img in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(img, format="rgb24")
            vf.pts = i
            out.mux(stream.encode(vf))
        out.mux(stream.encode(None))
        if sound is not None:
            _write_tone(out, sound, len(frames) / fps)
    return str(path)


def _write_tone(out, stream, seconds: float) -> None:
    rate, chunk = 48000, 1024
    total = int(round(seconds * rate))
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        t = (np.arange(start, start + n) / rate).astype(np.float32)
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        af.sample_rate, af.pts = rate, start
        out.mux(stream.encode(af))
    out.mux(stream.encode(None))


def make_shot_clip(path: str | Path, parts: list, *, fps: int = 25, size: tuple[int, int] = (320, 240),
                   audio: bool = False) -> Truth:
    """Write the clip ``parts`` describe (see the module); returns its truth."""
    frames, truth = render(parts, size)
    write_frames(path, frames, fps, audio=audio)
    return truth
