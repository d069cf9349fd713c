"""Make the small sample clips in ``sample_videos/`` from photos that ship with
scikit-image and matplotlib, plus a JSON file of exact appearance times.

Usage::

    python tools/make_sample_videos.py [--out sample_videos]

Each photo is shown for a few seconds with a slow zoom and drift, letterboxed
on a dark background, with short plain dark gaps between photos. Output is
deterministic (single-threaded x264, fixed settings), so re-running it gives
the same files.

Truth intervals are half-open ``[start_s, end_s)``: ``start_s`` is the PTS of
the first frame showing the photo, ``end_s`` the PTS of the first frame after.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import av
import numpy as np
from PIL import Image

FPS = 24
SIZE = (640, 360)
PHOTO_S = 3.5
GAP_S = 0.5
DARK = (16, 16, 20)

MONTAGE = ["coffee", "cat", "astronaut", "rocket", "grace_hopper"]
SHORT = ["coffee", "cat"]


def load_photos() -> dict[str, Image.Image]:
    """The sample photos, by label (all bundled with the installed packages)."""
    import matplotlib.cbook
    import skimage.data

    hopper = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    photos = {
        "coffee": skimage.data.coffee(),
        "cat": skimage.data.chelsea(),
        "astronaut": skimage.data.astronaut(),
        "rocket": skimage.data.rocket(),
    }
    out = {k: Image.fromarray(v).convert("RGB") for k, v in photos.items()}
    out["grace_hopper"] = Image.open(hopper).convert("RGB")
    return out


def photo_frame(photo: Image.Image, t: float) -> np.ndarray:
    """The photo at progress ``t`` in [0, 1]: zoom 1.0 -> 1.12 with a small drift."""
    w, h = SIZE
    fit = min(w / photo.width, h / photo.height) * (1.0 + 0.12 * t)
    pw, ph = round(photo.width * fit), round(photo.height * fit)
    scaled = photo.resize((pw, ph), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", SIZE, DARK)
    # Centre, drifting right/down by up to 4% of the frame.
    x = (w - pw) // 2 + round(0.04 * w * (t - 0.5))
    y = (h - ph) // 2 + round(0.04 * h * (t - 0.5))
    canvas.paste(scaled, (x, y))
    return np.asarray(canvas)


def timeline(labels: list[str]) -> list[tuple[str | None, int]]:
    """(label or None for a dark gap, frame count) segments, gaps around photos."""
    gap, shown = round(GAP_S * FPS), round(PHOTO_S * FPS)
    segments: list[tuple[str | None, int]] = [(None, gap)]
    for label in labels:
        segments += [(label, shown), (None, gap)]
    return segments


def write_clip(path: Path, labels: list[str], photos: dict[str, Image.Image]) -> dict:
    """Encode one clip; return its truth record."""
    dark = np.full((SIZE[1], SIZE[0], 3), DARK, np.uint8)
    intervals, index = [], 0
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(
            "libx264",
            rate=FPS,
            options={"preset": "medium", "crf": "30", "x264-params": "threads=1:keyint=48"},
        )
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        for label, n in timeline(labels):
            if label is not None:
                intervals.append({"label": label, "start_s": index / FPS, "end_s": (index + n) / FPS})
            for i in range(n):
                image = dark if label is None else photo_frame(photos[label], i / max(1, n - 1))
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            index += n
        for packet in stream.encode():
            container.mux(packet)
    return {
        "duration_s": index / FPS,
        "fps": FPS,
        "frames": index,
        "width": SIZE[0],
        "height": SIZE[1],
        "intervals": intervals,
    }


def save_jpeg(photo: Image.Image, path: Path, long_side: int = 480) -> None:
    """A small JPEG (well under 100 KB) for the image-input path."""
    scale = long_side / max(photo.size)
    small = photo.resize((round(photo.width * scale), round(photo.height * scale)), Image.Resampling.BILINEAR)
    small.save(path, quality=85, optimize=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "sample_videos"))
    out = Path(parser.parse_args(argv).out)
    out.mkdir(parents=True, exist_ok=True)
    photos = load_photos()
    truth = {
        "photos_montage.mp4": write_clip(out / "photos_montage.mp4", MONTAGE, photos),
        "coffee_and_cat.mp4": write_clip(out / "coffee_and_cat.mp4", SHORT, photos),
    }
    save_jpeg(photos["coffee"], out / "coffee.jpg")
    save_jpeg(photos["cat"], out / "cat.jpg")
    note = "intervals are half-open [start_s, end_s) in seconds of PTS"
    (out / "photos_truth.json").write_text(json.dumps({"note": note, "clips": truth}, indent=2) + "\n")
    for p in sorted(out.iterdir()):
        print(f"{p.name}: {p.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
