"""Procedural cartoon scenes with known content, for the offline demo model.

Everything here is deterministic given a ``numpy.random.Generator``: the same
seed draws the same picture and the same caption. The drawings are crude on
purpose — they only need to be told apart by a tiny CLIP trained on them
(``tools/train_demo_model.py``) and to look like themselves to a person
watching the demo videos (``tools/make_demo_videos.py``).

The "skull" class is a clearly labelled stand-in for unsafe content, so the
NSFW path of the pipeline can be demonstrated and tested without real
unsafe material.

Public API:
    CLASSES, BACKGROUNDS, COLOURS
    render_background(rng, size, background) -> PIL.Image
    draw_object(img, obj, xy, scale, colour, rng) -> PIL.Image (drawn in place)
    render_scene(rng, size, obj, background, obj_xy, obj_scale, colour)
        -> (PIL.Image, caption)
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES: tuple[str, ...] = ("coffee cup", "ball", "tree", "car", "house", "skull")
BACKGROUNDS: tuple[str, ...] = ("kitchen", "room", "street", "park")
INDOOR: tuple[str, ...] = ("kitchen", "room")

# Colour names used in captions -> RGB.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 30, 35),
    "green": (40, 165, 50),
    "blue": (35, 70, 210),
    "yellow": (240, 210, 30),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "orange": (245, 130, 20),
    "purple": (130, 45, 170),
    "brown": (120, 70, 30),
    "gray": (128, 128, 128),
    "pink": (240, 120, 170),
}

# Colours each class is usually drawn in (any colour is allowed when asked).
_TYPICAL = {
    "tree": ("green", "green", "green", "yellow", "orange", "brown"),
    "skull": ("white", "white", "white", "gray", "yellow"),
}

Size = tuple[int, int]
RGB = tuple[int, int, int]


def _jitter(rng: np.random.Generator, rgb: RGB, amount: int = 18) -> RGB:
    """Shift a colour a little so no two drawings share exact pixel values."""
    d = rng.integers(-amount, amount + 1, size=3)
    return tuple(int(np.clip(c + x, 0, 255)) for c, x in zip(rgb, d))  # type: ignore[return-value]


def _darker(rgb: RGB, f: float = 0.6) -> RGB:
    return tuple(int(c * f) for c in rgb)  # type: ignore[return-value]


def _pastel(rng: np.random.Generator) -> RGB:
    return tuple(int(x) for x in rng.integers(150, 235, size=3))  # type: ignore[return-value]


# --------------------------------------------------------------------------- backgrounds


def _indoor(rng: np.random.Generator, d: ImageDraw.ImageDraw, w: int, h: int, kitchen: bool) -> None:
    wall = _pastel(rng)
    d.rectangle([0, 0, w, h], fill=wall)
    table_y = int(h * rng.uniform(0.68, 0.78))
    if kitchen:  # tiled splash-back and wall cabinets
        tile = _jitter(rng, (225, 225, 220), 20)
        d.rectangle([0, int(h * 0.4), w, table_y], fill=tile)
        step = max(6, int(h * 0.07))
        for x in range(0, w, step):
            d.line([x, int(h * 0.4), x, table_y], fill=_darker(tile, 0.8))
        for y in range(int(h * 0.4), table_y, step):
            d.line([0, y, w, y], fill=_darker(tile, 0.8))
        cab = _jitter(rng, (170, 120, 80), 30)
        n = int(rng.integers(2, 5))
        for i in range(n):
            x0 = int(w * i / n) + 3
            d.rectangle([x0, 0, x0 + int(w / n) - 6, int(h * 0.28)], fill=cab, outline=_darker(cab))
    else:  # room: window and a picture frame
        wx = int(w * rng.uniform(0.02, 0.15))
        d.rectangle(
            [wx, int(h * 0.08), wx + int(w * 0.2), int(h * 0.42)],
            fill=(170, 210, 240),
            outline=(250, 250, 250),
            width=3,
        )
        px = int(w * rng.uniform(0.65, 0.8))
        d.rectangle(
            [px, int(h * 0.1), px + int(w * 0.15), int(h * 0.3)],
            fill=_pastel(rng),
            outline=(90, 60, 30),
            width=3,
        )
        floor = _jitter(rng, (150, 105, 60), 25)
        d.rectangle([0, int(h * 0.88), w, h], fill=floor)
    top = _jitter(rng, (140, 95, 55) if kitchen else (110, 75, 45), 30)
    d.rectangle([0, table_y, w, h if kitchen else int(h * 0.88)], fill=top)
    d.rectangle([0, table_y, w, table_y + max(2, h // 60)], fill=_darker(top, 0.7))


def _outdoor(rng: np.random.Generator, d: ImageDraw.ImageDraw, w: int, h: int, street: bool) -> None:
    sky = _jitter(rng, (140, 195, 240), 25)
    horizon = int(h * rng.uniform(0.42, 0.55))
    d.rectangle([0, 0, w, horizon], fill=sky)
    for _ in range(int(rng.integers(0, 4))):  # clouds
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, horizon * 0.6), rng.uniform(0.03, 0.07) * h
        for k in range(3):
            ox = cx + (k - 1) * r * 1.1
            d.ellipse([ox - r, cy - r * 0.7, ox + r, cy + r * 0.7], fill=(250, 250, 252))
    if street:
        walk = _jitter(rng, (185, 180, 170), 15)
        d.rectangle([0, horizon, w, h], fill=walk)
        road_y = int(horizon + (h - horizon) * 0.3)
        road = _jitter(rng, (75, 75, 80), 12)
        d.rectangle([0, road_y, w, h], fill=road)
        lane_y = int((road_y + h) / 2)
        dash = max(8, w // 16)
        off = int(rng.integers(0, dash * 2))
        for x in range(-off, w, dash * 2):
            d.rectangle([x, lane_y - 1, x + dash, lane_y + 1], fill=(240, 240, 240))
        for _ in range(int(rng.integers(1, 3))):  # lamp posts
            x = int(rng.uniform(0, w))
            d.line([x, horizon - int(h * 0.25), x, road_y], fill=(50, 50, 50), width=max(2, w // 120))
            d.ellipse(
                [x - 4, horizon - int(h * 0.25) - 4, x + 4, horizon - int(h * 0.25) + 4], fill=(250, 240, 150)
            )
    else:
        grass = _jitter(rng, (95, 170, 70), 20)
        d.rectangle([0, horizon, w, h], fill=grass)
        for _ in range(int(rng.integers(1, 4))):  # low bushes on the horizon
            x, r = rng.uniform(0, w), rng.uniform(0.03, 0.06) * h
            d.ellipse([x - 2 * r, horizon - r, x + 2 * r, horizon + r], fill=_darker(grass, 0.75))
        path = _jitter(rng, (200, 180, 140), 15)
        x0 = rng.uniform(0.2, 0.8) * w
        d.polygon(
            [(x0 - w * 0.02, horizon), (x0 + w * 0.02, horizon), (x0 + w * 0.25, h), (x0 - w * 0.25, h)],
            fill=path,
        )


def render_background(rng: np.random.Generator, size: Size, background: str) -> Image.Image:
    """Draw an empty background ("kitchen", "room", "street" or "park").

    Args:
        rng: Source of all randomness.
        size: (width, height) in pixels.
        background: One of ``BACKGROUNDS``.

    Returns:
        A new RGB image.
    """
    if background not in BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}; expected one of {BACKGROUNDS}")
    w, h = size
    img = Image.new("RGB", (w, h))
    d = ImageDraw.Draw(img)
    if background in INDOOR:
        _indoor(rng, d, w, h, kitchen=background == "kitchen")
    else:
        _outdoor(rng, d, w, h, street=background == "street")
    return img


def add_clutter(rng: np.random.Generator, img: Image.Image, n: int) -> None:
    """Scatter ``n`` small distracting shapes (lines, squares, triangles) in place."""
    w, h = img.size
    d = ImageDraw.Draw(img)
    for _ in range(n):
        col = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x, y, s = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.02, 0.06) * h
        kind = int(rng.integers(0, 3))
        if kind == 0:
            d.line(
                [x, y, x + rng.uniform(-3, 3) * s, y + rng.uniform(-1, 1) * s],
                fill=col,
                width=max(1, int(s / 5)),
            )
        elif kind == 1:
            d.rectangle([x, y, x + s, y + s * rng.uniform(0.5, 1.5)], fill=col)
        else:
            d.polygon([(x, y), (x + s, y), (x + s / 2, y - s)], fill=col)


# --------------------------------------------------------------------------- objects
# Each drawer gets the object's centre (cx, cy), its height s in pixels and
# its main colour; proportions are fixed so a class always reads as itself.


def _cup(d: ImageDraw.ImageDraw, rng, cx: float, cy: float, s: float, col: RGB) -> None:
    w = s * 0.7
    top, bot = cy - s * 0.4, cy + s * 0.35
    edge = _darker(col, 0.55)
    # handle: a thick ring on the right
    hx = cx + w * 0.5
    d.ellipse(
        [hx - s * 0.2, cy - s * 0.25, hx + s * 0.2, cy + s * 0.15], outline=col, width=max(2, int(s * 0.08))
    )
    d.polygon(
        [(cx - w / 2, top), (cx + w / 2, top), (cx + w * 0.4, bot), (cx - w * 0.4, bot)],
        fill=col,
        outline=edge,
    )
    d.ellipse(
        [cx - w / 2, top - s * 0.08, cx + w / 2, top + s * 0.08], fill=(80, 45, 20), outline=edge
    )  # coffee
    d.ellipse(
        [cx - w * 0.75, bot - s * 0.05, cx + w * 0.75, bot + s * 0.1],
        fill=_jitter(rng, (235, 235, 235), 10),
        outline=(150, 150, 150),
    )
    for k in (-1, 1):  # steam
        x = cx + k * w * 0.15
        d.arc(
            [x - s * 0.06, top - s * 0.35, x + s * 0.06, top - s * 0.12],
            90,
            270,
            fill=(200, 200, 200),
            width=2,
        )


def _ball(d: ImageDraw.ImageDraw, rng, cx: float, cy: float, s: float, col: RGB) -> None:
    r = s * 0.5
    d.ellipse(
        [cx - r, cy - r, cx + r, cy + r], fill=col, outline=_darker(col, 0.5), width=max(1, int(s * 0.03))
    )
    seam = (250, 250, 250) if sum(col) < 600 else (40, 40, 40)
    d.arc([cx - r * 0.6, cy - r, cx + r * 1.4, cy + r], 120, 240, fill=seam, width=max(1, int(s * 0.05)))
    d.arc([cx - r * 1.4, cy - r, cx + r * 0.6, cy + r], -60, 60, fill=seam, width=max(1, int(s * 0.05)))
    d.ellipse([cx - r * 0.55, cy - r * 0.6, cx - r * 0.25, cy - r * 0.3], fill=(255, 255, 255))  # highlight


def _tree(d: ImageDraw.ImageDraw, rng, cx: float, cy: float, s: float, col: RGB) -> None:
    trunk = (110, 65, 30)
    d.rectangle([cx - s * 0.07, cy, cx + s * 0.07, cy + s * 0.5], fill=trunk)
    edge = _darker(col, 0.6)
    if rng.random() < 0.5:  # round crown of blobs
        for ox, oy, r in ((0, -0.22, 0.25), (-0.17, -0.05, 0.2), (0.17, -0.05, 0.2), (0, 0.0, 0.2)):
            d.ellipse(
                [cx + (ox - r) * s, cy + (oy - r) * s, cx + (ox + r) * s, cy + (oy + r) * s],
                fill=col,
                outline=edge,
            )
    else:  # pine: stacked triangles
        for k in range(3):
            y0 = cy - s * 0.5 + k * s * 0.17
            hw = s * (0.18 + 0.09 * k)
            d.polygon([(cx, y0), (cx + hw, y0 + s * 0.3), (cx - hw, y0 + s * 0.3)], fill=col, outline=edge)


def _car(d: ImageDraw.ImageDraw, rng, cx: float, cy: float, s: float, col: RGB) -> None:
    # s is the car's height; it is about 2x as wide as tall
    w = s * 2.0
    edge = _darker(col, 0.5)
    body = [cx - w / 2, cy - s * 0.1, cx + w / 2, cy + s * 0.3]
    d.rounded_rectangle(body, radius=s * 0.1, fill=col, outline=edge)
    d.polygon(
        [
            (cx - w * 0.28, cy - s * 0.1),
            (cx - w * 0.17, cy - s * 0.45),
            (cx + w * 0.17, cy - s * 0.45),
            (cx + w * 0.3, cy - s * 0.1),
        ],
        fill=col,
        outline=edge,
    )
    glass = (170, 215, 240)
    d.polygon(
        [
            (cx - w * 0.23, cy - s * 0.13),
            (cx - w * 0.15, cy - s * 0.4),
            (cx - w * 0.02, cy - s * 0.4),
            (cx - w * 0.02, cy - s * 0.13),
        ],
        fill=glass,
    )
    d.polygon(
        [
            (cx + w * 0.02, cy - s * 0.13),
            (cx + w * 0.02, cy - s * 0.4),
            (cx + w * 0.15, cy - s * 0.4),
            (cx + w * 0.25, cy - s * 0.13),
        ],
        fill=glass,
    )
    for wx in (cx - w * 0.28, cx + w * 0.28):
        r = s * 0.2
        d.ellipse([wx - r, cy + s * 0.3 - r, wx + r, cy + s * 0.3 + r], fill=(25, 25, 25))
        d.ellipse(
            [wx - r * 0.45, cy + s * 0.3 - r * 0.45, wx + r * 0.45, cy + s * 0.3 + r * 0.45],
            fill=(170, 170, 170),
        )
    d.ellipse(
        [cx + w / 2 - s * 0.12, cy - s * 0.02, cx + w / 2 - s * 0.02, cy + s * 0.08], fill=(255, 240, 150)
    )


def _house(d: ImageDraw.ImageDraw, rng, cx: float, cy: float, s: float, col: RGB) -> None:
    w = s * 0.9
    edge = _darker(col, 0.55)
    base = cy - s * 0.1
    d.rectangle([cx - w / 2, base, cx + w / 2, cy + s * 0.5], fill=col, outline=edge)
    roof = (150, 40, 35) if col[0] < 150 or col[1] > 120 else (70, 60, 60)
    d.polygon(
        [(cx - w * 0.62, base), (cx, cy - s * 0.5), (cx + w * 0.62, base)], fill=roof, outline=_darker(roof)
    )
    d.rectangle([cx - w * 0.1, cy + s * 0.2, cx + w * 0.1, cy + s * 0.5], fill=(95, 55, 25))  # door
    for ox in (-0.3, 0.3):
        x0 = cx + ox * w - w * 0.1
        d.rectangle(
            [x0, cy, x0 + w * 0.2, cy + s * 0.17], fill=(170, 215, 240), outline=(250, 250, 250), width=2
        )
    d.rectangle([cx + w * 0.2, cy - s * 0.42, cx + w * 0.32, cy - s * 0.22], fill=(120, 60, 40))  # chimney


def _skull(d: ImageDraw.ImageDraw, rng, cx: float, cy: float, s: float, col: RGB) -> None:
    edge = _darker(col, 0.5)
    d.rounded_rectangle(
        [cx - s * 0.22, cy + s * 0.05, cx + s * 0.22, cy + s * 0.45], radius=s * 0.08, fill=col, outline=edge
    )  # jaw
    d.ellipse([cx - s * 0.38, cy - s * 0.5, cx + s * 0.38, cy + s * 0.2], fill=col, outline=edge)  # cranium
    for k in (-1, 1):  # eye sockets
        ex = cx + k * s * 0.15
        d.ellipse([ex - s * 0.11, cy - s * 0.15, ex + s * 0.11, cy + s * 0.05], fill=(15, 15, 15))
    d.polygon(
        [(cx, cy + s * 0.06), (cx - s * 0.06, cy + s * 0.17), (cx + s * 0.06, cy + s * 0.17)],
        fill=(15, 15, 15),
    )
    for k in range(-2, 3):  # teeth
        x = cx + k * s * 0.07
        d.line([x, cy + s * 0.27, x, cy + s * 0.42], fill=(40, 40, 40), width=max(1, int(s * 0.025)))
    d.line(
        [cx - s * 0.18, cy + s * 0.34, cx + s * 0.18, cy + s * 0.34],
        fill=(40, 40, 40),
        width=max(1, int(s * 0.02)),
    )


_DRAWERS = {"coffee cup": _cup, "ball": _ball, "tree": _tree, "car": _car, "house": _house, "skull": _skull}

# Width/height of each class's drawing, used to keep objects inside the frame.
ASPECT = {"coffee cup": 1.2, "ball": 1.0, "tree": 0.8, "car": 2.0, "house": 1.15, "skull": 0.8}


def draw_object(
    img: Image.Image,
    obj: str,
    xy: tuple[float, float],
    scale: float,
    colour: str,
    rng: np.random.Generator,
) -> Image.Image:
    """Draw one object onto ``img`` in place (and return it).

    Args:
        img: Image to draw on (RGB).
        obj: One of ``CLASSES``.
        xy: Centre of the object as fractions of (width, height).
        scale: Object height as a fraction of the image height.
        colour: A key of ``COLOURS``.
        rng: Only used for small stylistic choices (e.g. round vs pine tree);
            pass a generator built from the same seed on every frame to keep
            a moving object's look fixed.

    Returns:
        ``img``.
    """
    if obj not in _DRAWERS:
        raise ValueError(f"unknown object {obj!r}; expected one of {CLASSES}")
    w, h = img.size
    col = _jitter(rng, COLOURS[colour], 12)
    _DRAWERS[obj](ImageDraw.Draw(img), rng, xy[0] * w, xy[1] * h, scale * h, col)
    return img


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption_for(obj: str | None, colour: str | None, background: str) -> str:
    """The canonical caption, e.g. "a photo of a red coffee cup in a kitchen"."""
    if obj is None:
        return f"a photo of an empty {background}"
    where = "on a" if background == "street" else "in a"
    return f"a photo of {_article(colour or obj)} {colour + ' ' if colour else ''}{obj} {where} {background}"


def _pick_colour(rng: np.random.Generator, obj: str) -> str:
    if obj in _TYPICAL and rng.random() < 0.8:
        return str(rng.choice(_TYPICAL[obj]))
    return str(rng.choice(list(COLOURS)))


def random_placement(rng: np.random.Generator, obj: str, size: Size) -> tuple[tuple[float, float], float]:
    """A random centre and scale that keep ``obj`` inside the central square.

    CLIP preprocessing centre-crops to a square, so the object is kept within
    the middle ``min(w, h)`` pixels horizontally.
    """
    w, h = size
    scale = float(rng.uniform(0.28, 0.5))
    half_w = scale * h * ASPECT[obj] / 2 / w
    half_h = scale * 0.55
    margin = (1 - min(w, h) / w) / 2  # part of the width the centre crop drops
    lo, hi = margin + half_w, 1 - margin - half_w
    x = float(rng.uniform(lo, hi)) if hi > lo else 0.5
    y = float(rng.uniform(half_h, max(half_h, 1 - half_h)))
    return (x, y), scale


def render_scene(
    rng: np.random.Generator,
    size: Size = (320, 240),
    obj: str | None = None,
    background: str | None = None,
    obj_xy: tuple[float, float] | None = None,
    obj_scale: float | None = None,
    colour: str | None = None,
    clutter: int | None = None,
) -> tuple[Image.Image, str]:
    """Render one scene with zero or one object and return it with its caption.

    Args:
        rng: Source of all randomness; the same seed gives the same scene.
        size: (width, height).
        obj: One of ``CLASSES``, or None for an empty scene.
        background: One of ``BACKGROUNDS``; random when None.
        obj_xy: Object centre as fractions of (width, height); random when None.
        obj_scale: Object height as a fraction of image height; random when None.
        colour: Key of ``COLOURS``; random (class-typical) when None.
        clutter: Number of small distracting shapes; random 0–4 when None.

    Returns:
        (image, caption), e.g. "a photo of a red coffee cup in a kitchen".
    """
    if background is None:
        background = str(rng.choice(BACKGROUNDS))
    img = render_background(rng, size, background)
    add_clutter(rng, img, int(rng.integers(0, 5)) if clutter is None else clutter)
    if obj is None:
        return img, caption_for(None, None, background)
    if colour is None:
        colour = _pick_colour(rng, obj)
    xy, scale = random_placement(rng, obj, size)
    draw_object(img, obj, obj_xy or xy, obj_scale or scale, colour, rng)
    return img, caption_for(obj, colour, background)


def degrade(rng: np.random.Generator, img: Image.Image) -> Image.Image:
    """Mild camera/codec damage: blur, noise and JPEG artefacts, each at random."""
    import io

    if rng.random() < 0.3:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5))))
    if rng.random() < 0.5:
        a = np.asarray(img, dtype=np.float32)
        a = a + rng.normal(0, rng.uniform(2, 12), a.shape)
        img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if rng.random() < 0.6:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=int(rng.integers(20, 85)))
        buf.seek(0)
        img = Image.open(buf).convert("RGB")
    return img


def main(argv: list[str] | None = None) -> None:
    """A contact sheet of every background with and without each object."""
    import argparse

    p = argparse.ArgumentParser(description="Draw a contact sheet of the demo's scenes: each "
                                            "background, empty and with each object (seed 0).")
    p.add_argument("out", nargs="?", default="/tmp/scenes.png",
                   help="PNG to write (default: /tmp/scenes.png)")
    args = p.parse_args(argv)
    g = np.random.default_rng(0)
    tiles = [render_scene(g, obj=o, background=b)[0] for b in BACKGROUNDS for o in (None, *CLASSES)]
    sheet = Image.new("RGB", (320 * 7, 240 * 4))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % 7) * 320, (i // 7) * 240))
    sheet.save(args.out, format="PNG")


if __name__ == "__main__":  # quick look: python tools/render_scenes.py [out.png]
    main()
