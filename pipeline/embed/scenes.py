"""Seeded drawn scenes: frames like cartoons, diagrams and animated content.

int8's activation ranges are calibrated and checked on photographs and on flat
box scenes (:mod:`pipeline.embed.choose`). Drawings are neither: large flat
fills split by hard, often outlined edges, thin lines and small details. On the
demo model, trained on such drawings, OpenVINO int8 agreed with fp32 at 0.9997
on photos and flat scenes but 0.9973 on its own clips' frames, so both the
quantiser and ``precision: auto``'s check see frames like these (each a seed
of its own).

The drawings are generic (bands of sky and ground, filled polygons, ellipses
and boxes with outlines, thin lines, small details), drawn at 256 px and scaled
to the model's input as a decoder scales a frame.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

CANVAS = 256  # drawn at this size, then scaled as the decoder scales frames


def drawn_scenes(size: int, count: int, *, seed: int) -> list[np.ndarray]:
    """``count`` drawn scenes, ``size`` x ``size`` x 3 uint8, the same for the same seed."""
    rng = np.random.default_rng(seed)
    return [_scene(rng, size) for _ in range(count)]


def _scene(rng: np.random.Generator, size: int) -> np.ndarray:
    image = Image.new("RGB", (CANVAS, CANVAS))
    draw = ImageDraw.Draw(image)
    _bands(draw, rng)
    for _ in range(int(rng.integers(2, 7))):
        _shape(draw, rng)
    for _ in range(int(rng.integers(0, 4))):
        _line(draw, rng)
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))


def _colour(rng: np.random.Generator, *, light: bool = False) -> tuple[int, int, int]:
    """A saturated or pale colour, as drawings use (few mid greys)."""
    low = 150 if light else 0
    colour = rng.integers(low, 256, 3)
    if not light and rng.random() < 0.6:
        colour[rng.integers(0, 3)] = rng.integers(0, 60)  # one channel dark: a saturated hue
    return tuple(int(c) for c in colour)


def _bands(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    """Horizontal bands (sky, wall, ground): flat, or a vertical gradient."""
    edges = np.sort(rng.integers(CANVAS // 5, CANVAS, int(rng.integers(0, 3))))
    tops = [0, *edges.tolist()]
    bottoms = [*edges.tolist(), CANVAS]
    for top, bottom in zip(tops, bottoms):
        start, end = np.array(_colour(rng, light=top == 0)), np.array(_colour(rng))
        gradient = rng.random() < 0.4
        for y in range(top, bottom):
            share = (y - top) / max(1, bottom - top) if gradient else 0.0
            draw.line([(0, y), (CANVAS, y)], fill=tuple(int(c) for c in start + (end - start) * share))


def _shape(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    """A filled box, ellipse or polygon, often outlined, sometimes with small details."""
    x0, y0 = rng.integers(0, CANVAS - 24, 2)
    w, h = rng.integers(16, CANVAS // 2, 2)
    box = [int(x0), int(y0), int(min(CANVAS - 1, x0 + w)), int(min(CANVAS - 1, y0 + h))]
    outline = tuple(int(c) for c in rng.integers(0, 70, 3)) if rng.random() < 0.7 else None
    width = int(rng.integers(1, 4))
    kind = rng.integers(0, 3)
    fill = _colour(rng)
    if kind == 0:
        draw.rectangle(box, fill=fill, outline=outline, width=width)
    elif kind == 1:
        draw.ellipse(box, fill=fill, outline=outline, width=width)
    else:
        corners = int(rng.integers(3, 7))
        xs = rng.integers(box[0], box[2] + 1, corners)
        ys = rng.integers(box[1], box[3] + 1, corners)
        draw.polygon([(int(x), int(y)) for x, y in zip(xs, ys)], fill=fill, outline=outline, width=width)
    for _ in range(int(rng.integers(0, 4))):  # windows, buttons, eyes
        dx, dy = rng.integers(0, max(1, box[2] - box[0] - 6)), rng.integers(0, max(1, box[3] - box[1] - 6))
        side = int(rng.integers(3, 12))
        left, top = box[0] + int(dx), box[1] + int(dy)
        draw.rectangle([left, top, left + side, top + side], fill=_colour(rng, light=True), outline=outline)


def _line(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    """A thin line: a pole, a wire, a road marking."""
    points = [tuple(int(v) for v in rng.integers(0, CANVAS, 2)) for _ in range(2)]
    draw.line(points, fill=_colour(rng), width=int(rng.integers(1, 4)))
