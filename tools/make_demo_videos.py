"""Render the demo clips in ``sample_videos/`` and their ground truth.

Each clip is a fixed background (drawn by ``tools/render_scenes.py``, the
same renderer the demo model was trained on) on which objects appear one at
a time, drift across the frame and disappear at known times. Objects pop in
and out (no partial entry through the frame edge) and stay inside the
centre square that CLIP preprocessing keeps, so the truth intervals are
exactly the times the object is fully visible to the model.

Usage:
    python tools/make_demo_videos.py [--out sample_videos] [--seed 0]

Writes ``demo_kitchen.mp4``, ``demo_street.mp4``, ``demo_park.mp4`` (320x240,
15 fps, H.264) and ``demo_truth.json``:
``{"clips": {name: {"duration_s", "fps", "background",
"intervals": [{"label", "start_s", "end_s", "colour"}]}}}``.
An interval covers frames with ``start_s <= t < end_s`` (t = frame_index / fps).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import render_scenes as R  # noqa: E402

SIZE = (320, 240)
FPS = 15

# name: (background, duration_s, [(label, colour, start_s, end_s, x_from, x_to)]).
# Whole-second boundaries so every interval starts and ends on a frame;
# gaps >= 2 s, each object >= 3 s, one object at a time.
CLIPS = {
    "demo_kitchen.mp4": (
        "kitchen",
        15.0,
        [
            ("coffee cup", "white", 2.0, 6.0, 0.38, 0.6),
            ("ball", "blue", 9.0, 13.0, 0.62, 0.4),
        ],
    ),
    "demo_street.mp4": (
        "street",
        18.0,
        [
            ("car", "red", 1.0, 5.0, 0.44, 0.56),
            ("skull", "white", 7.0, 11.0, 0.4, 0.6),
            ("house", "blue", 13.0, 16.0, 0.45, 0.55),
        ],
    ),
    "demo_park.mp4": (
        "park",
        15.0,
        [
            ("tree", "green", 2.0, 6.0, 0.4, 0.6),
            ("ball", "red", 9.0, 13.0, 0.6, 0.38),
        ],
    ),
}

# Object height as a fraction of the frame height, and centre height.
SCALE = {"coffee cup": 0.42, "ball": 0.4, "tree": 0.45, "car": 0.36, "house": 0.45, "skull": 0.42}
Y = {"kitchen": 0.58, "room": 0.58, "street": 0.62, "park": 0.6}


def frame_at(background_img, t: float, intervals, bg: str, seed: int, clip_index: int):
    """The frame shown at time ``t``: the background plus the active object, if any."""
    img = background_img.copy()
    for k, (label, colour, start, end, x0, x1) in enumerate(intervals):
        if start <= t < end:
            u = (t - start) / (end - start)
            y = Y[bg] + (0.04 * abs(np.sin(u * 4 * np.pi)) * -1 if label == "ball" else 0.0)  # balls bounce
            style = np.random.default_rng([seed, clip_index, k])  # same look on every frame
            R.draw_object(img, label, (x0 + (x1 - x0) * u, y), SCALE[label], colour, style)
    return img


def write_clip(path: Path, bg: str, duration: float, intervals, seed: int, clip_index: int,
               fps: float = FPS) -> None:
    """One clip at ``fps`` frames a second (an interval's object is on the
    frames whose time ``index / fps`` lies in ``[start_s, end_s)``)."""
    from fractions import Fraction

    import av

    background = R.render_background(np.random.default_rng([seed, clip_index]), SIZE, bg)
    R.add_clutter(np.random.default_rng([seed, clip_index, 99]), background, 3)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "28", "preset": "medium", "threads": "1"}  # threads=1: byte-identical output
        for i in range(round(duration * fps)):
            img = frame_at(background, i / fps, intervals, bg, seed, clip_index)
            frame = av.VideoFrame.from_image(img)
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def truth() -> dict:
    clips = {}
    for name, (bg, duration, intervals) in CLIPS.items():
        clips[name] = {
            "duration_s": duration,
            "fps": FPS,
            "background": bg,
            "intervals": [
                {"label": lab, "start_s": s, "end_s": e, "colour": c} for lab, c, s, e, _, _ in intervals
            ],
        }
    return {"clips": clips}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=Path("sample_videos"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for i, (name, (bg, duration, intervals)) in enumerate(CLIPS.items()):
        write_clip(args.out / name, bg, duration, intervals, args.seed, i)
        print(f"{args.out / name}: {(args.out / name).stat().st_size / 1e3:.0f} kB")
    (args.out / "demo_truth.json").write_text(json.dumps(truth(), indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
