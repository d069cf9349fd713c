"""Semantic search over stored frame embeddings: a text or image query →
the closest frames, as a table, a CSV of hits and one of moments
(:mod:`pipeline.explore.moments`), and a contact sheet, each named by the query
(:func:`output_stem`).

The query is embedded with the model the store was built with (or a model
of the same dimension given explicitly). Nothing is decoded except the few
thumbnails of the results.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.atomic import atomic_path, bounded_name, fit_bytes
from pipeline.explore.moments import Moment, Timeline, frame_ends, input_end, moments_of, ranked
from pipeline.measure.truth import matches as names_input
from pipeline.store.cache import embed_and_keep
from pipeline.store.db import EmbeddingStore
from pipeline.store.rows import StoredVideo
from pipeline.types import PipelineError, StoreError

log = logging.getLogger(__name__)

SLUG_BYTES = 60  # the query's part of an output name


@dataclass(frozen=True)
class Hit:
    """One search result."""

    rank: int
    input_path: str
    time_s: float
    frame_index: int
    score: float  # cosine similarity, -1..1


def search(store: EmbeddingStore, query: np.ndarray, *, top_k: int = 10,
           video: str | None = None, sampling: str | None = None, index: bool = True) -> list[Hit]:
    """The ``top_k`` stored frames most similar to the query vector, one hit
    per frame: a frame stored by runs with different sampling (or a copy of
    the same file) appears once, by ``(content hash, frame_index)``.

    Args:
        query: an L2-normalised embedding of the store's dimension.
        video: keep only inputs whose path, file name or stem is ``video``.
        sampling: keep only inputs stored with this sampling (see
            :func:`select_videos`).
        index: build the store's vector index first when it is large and
            has none (False: a read-only caller, such as ``serve``).

    Raises:
        StoreError: nothing matches ``video``/``sampling``, or the store
            cannot be read or holds damaged vectors.
    """
    videos = select_videos(store, video=video, sampling=sampling)
    try:  # built once, by whoever first needs it; never waits for a writer
        if index:
            store.ensure_index(refresh=False, wait_s=0)
    except StoreError as ex:  # busy, or read-only: exact search still answers
        log.info("searching without an index for now: %s", ex)
    rows, scores = store.nearest(query, top_k, videos)
    return [Hit(rank=i + 1, input_path=str(rows.input_path[i]), time_s=float(rows.time_s[i]),
                frame_index=int(rows.frame_index[i]), score=float(scores[i]))
            for i in range(len(rows))]


def select_videos(store: EmbeddingStore, *, video: str | None = None,
                  sampling: str | None = None) -> list[StoredVideo] | None:
    """The stored inputs a ``--video``/``--sampling`` filter keeps (None: no
    filter, every input).

    ``sampling`` is a stored sampling description (``every 0.5 s; auto;
    pyav``) or its rule alone (``every 0.5 s``).

    Raises:
        StoreError: no stored input matches, naming what the store holds.
    """
    if video is None and sampling is None:
        return None
    videos = store.videos()
    if video is not None:
        videos = [v for v in videos if matches(v, video)]
        if not videos:
            raise StoreError(f"no stored input matches --video {video!r}")
    if sampling is not None:
        held = sorted({v.sampling for v in videos})
        videos = [v for v in videos if sampling.strip() in (v.sampling, v.sampling.split(";")[0])]
        if not videos:
            raise StoreError(f"no stored input{' of --video ' + repr(video) if video else ''} has "
                             f"--sampling {sampling!r}; the store holds: "
                             f"{', '.join(repr(h) for h in held) or 'nothing'}")
    return videos


def find_moments(store: EmbeddingStore, query: np.ndarray, hits: Sequence[Hit],
                 videos: Sequence[StoredVideo] | None = None) -> list[Moment]:
    """The moments ``hits`` lie in (:mod:`pipeline.explore.moments`), best first, read
    off the query's similarity over every stored frame of the hits' inputs.

    Args:
        query: the vector the hits were searched with.
        videos: the stored inputs searched (:func:`select_videos`; None: all),
            whose frames make each input's curve.
    """
    if not hits:
        return []
    moments: list[Moment] = []
    for path, line in timelines(store, {h.input_path for h in hits}, videos).items():
        mine = [h for h in hits if h.input_path == path]
        moments += moments_of(line, line.vectors @ np.asarray(query, np.float32), mine)
    return ranked(moments)


def timelines(store: EmbeddingStore, paths: set[str],
              videos: Sequence[StoredVideo] | None = None) -> dict[str, Timeline]:
    """The :class:`~pipeline.explore.moments.Timeline` of each of ``paths`` among
    ``videos`` (None: all stored inputs). A file stored with several
    samplings is one timeline; a frame both sampled and refined counts once."""
    chosen = [v for v in (store.videos() if videos is None else videos) if v.input_path in paths]
    if not chosen:
        return {}
    rows = store.frames(chosen)
    refine = rows.refine_mask()
    out = {}
    for path in sorted(paths):
        mine = np.flatnonzero(rows.input_path == path)
        if len(mine):
            out[path] = _timeline(path, rows, refine, mine,
                                  [v.info for v in chosen if v.input_path == path and v.info is not None])
    return out


def _timeline(path: str, rows, refine: np.ndarray, mine: np.ndarray, info: list) -> Timeline:
    """One input's timeline from its rows ``mine`` of ``rows``; ``info``: its
    stored :class:`~pipeline.types.VideoInfo`."""
    # one row per frame (another sampling may hold it too), sampled before refinement
    order = mine[np.lexsort((refine[mine], rows.frame_index[mine]))]
    _, first = np.unique(rows.frame_index[order], return_index=True)
    keep = order[first]
    keep = keep[np.argsort(rows.time_s[keep], kind="stable")]
    times, edge = rows.time_s[keep], refine[keep]
    fps = next((i.avg_fps for i in info if i.avg_fps), None)
    end = input_end(times, edge, max((i.duration_s or 0.0 for i in info), default=0.0), fps)
    return Timeline(path, rows.frame_index[keep], times, frame_ends(times, edge, end_s=end, fps=fps),
                    rows.vectors[keep])


def matches(video: StoredVideo, name: str) -> bool:
    """True when ``name`` is the input's path, file name or file stem."""
    return names_input(video.input_path, name)


def query_vector(store: EmbeddingStore, load_embedder: Callable[[], Any], text: str | None = None,
                 image: str | os.PathLike | None = None, *, cached: bool = True) -> np.ndarray:
    """The query's embedding. With ``cached``, a text query the store's model
    embedded before comes from the store's prompt cache, so the model is not
    even loaded; a new one is embedded and kept for next time.

    Args:
        load_embedder: called only when the model is needed.
        cached: False when querying with a model other than the store's.
    """
    if (text is None) == (image is None):
        raise PipelineError("give a text query or --image, not both")
    if text is not None and cached:
        found, _ = store.text_vectors(store.model_id, store.model_revision, [text])
        return found[text] if text in found else embed_and_keep(store, load_embedder(), [text])[text]
    return embed_query(load_embedder(), text, image)


def embed_query(embedder, text: str | None = None, image: str | os.PathLike | None = None) -> np.ndarray:
    """Embed a text or an image file (read and resized as ``run`` reads images)."""
    if (text is None) == (image is None):
        raise PipelineError("give a text query or --image, not both")
    if text is not None:
        return embedder.embed_texts([text])[0]
    from pipeline.decode import open_decoder
    from pipeline.types import Sampling

    with open_decoder(str(image), short_side=embedder.input_size,
                      still_resize=embedder.still_resize) as decoder:
        frame = next(iter(decoder.frames(Sampling())))
    return embedder.embed_images(np.array(frame.image[None]))[0]  # a writable copy for torch


# --------------------------------------------------------------------------- outputs


def output_stem(text: str | None = None, image: str | os.PathLike | None = None) -> str:
    """The name a search's files share: ``search-`` and the query made safe
    for file names (``a photo of a cup.`` → ``search-a_photo_of_a_cup``; a
    picture query ``search-image-<file stem>``), so searches into one folder
    keep each other's files. A query cut to ``SLUG_BYTES``, or with nothing
    printable, ends in a hash of the whole query instead, so two long queries
    sharing a beginning do not share a name."""
    query = text if text is not None else f"image {Path(image).stem}" if image is not None else ""
    slug = bounded_name(query, SLUG_BYTES)
    data = query.encode("utf-8", "surrogatepass")
    if not slug or bounded_name(query, len(data) + 1) != slug:
        digest = hashlib.sha256(data).hexdigest()[:8]
        slug = "-".join(p for p in (fit_bytes(slug, SLUG_BYTES - 9).rstrip("_"), digest) if p)
    return f"search-{slug}"


def format_table(hits: list[Hit]) -> str:
    """The results as an aligned text table, times as ``mm:ss.mmm``
    (``h:mm:ss.mmm`` from an hour on)."""
    if not hits:
        return "no results"
    from pipeline.report.text import clock

    rows = [("rank", "input", "time", "score")] + [
        (str(h.rank), h.input_path, clock(h.time_s), f"{h.score:.4f}") for h in hits]
    return _aligned(rows)


def format_moments(moments: list[Moment]) -> str:
    """The moments as an aligned text table: ``start–end`` as ``mm:ss.mmm``."""
    if not moments:
        return "no moments"
    from pipeline.report.text import clock

    rows = [("moment", "input", "from–to", "best")] + [
        (str(i + 1), m.input_path, f"{clock(m.start_s)}–{clock(m.end_s)}", f"{m.best_score:.4f}")
        for i, m in enumerate(moments)]
    return _aligned(rows)


def _aligned(rows: list[tuple[str, ...]]) -> str:
    """Columns padded to width, the second (a path) left-aligned, the rest right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) if i == 1 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in rows)


def write_csv(hits: list[Hit], out_dir: str | Path, *, stem: str = "search") -> Path:
    """Write ``<stem>.csv``: rank, input, time_s, frame_index, score (text
    cells made formula-safe, see :func:`pipeline.report.tables.write_csv`)."""
    import pandas as pd

    from pipeline.report.tables import write_csv as write_table

    table = pd.DataFrame([(h.rank, h.input_path, f"{h.time_s:.3f}", h.frame_index, f"{h.score:.6f}")
                          for h in hits], columns=["rank", "input", "time_s", "frame_index", "score"])
    return write_table(table, Path(out_dir) / f"{stem}.csv")


MOMENT_COLUMNS = ["rank", "input", "start_s", "end_s", "best_time_s", "best_frame_index", "best_score",
                  "hits"]


def write_moments_csv(moments: list[Moment], out_dir: str | Path, *, stem: str = "search") -> Path:
    """Write ``<stem>.moments.csv``: one row per moment, best first
    (``hits``: how many of the hits lie in it)."""
    import pandas as pd

    from pipeline.report.tables import write_csv as write_table

    table = pd.DataFrame([(i + 1, m.input_path, f"{m.start_s:.3f}", f"{m.end_s:.3f}",
                           f"{m.best_time_s:.3f}", m.best_frame_index, f"{m.best_score:.6f}", m.hits)
                          for i, m in enumerate(moments)], columns=MOMENT_COLUMNS)
    return write_table(table, Path(out_dir) / f"{stem}.moments.csv")


SHEET_CELL = (260, 240)  # pixels per tile: caption above, thumbnail below
SHEET_TITLE_H = 40


def write_contact_sheet(hits: list[Hit], out_dir: str | Path, *, title: str = "",
                        columns: int = 5, thumb: int = 224, stem: str = "search",
                        nsfw: Sequence[bool] = ()) -> Path:
    """Write ``<stem>.png``: a grid of result thumbnails re-read from the
    inputs at their timestamps, each captioned by :func:`caption`. An
    input that can no longer be read gets a grey tile saying so.

    Drawn with Pillow, in matplotlib's DejaVu Sans where it is installed:
    importing and laying out a matplotlib figure was most of a search's
    start-up (about a second of 2.9 s on 2 cores), and text is drawn as
    written (no mathtext, so "$" in a title or file name is plain).

    Args:
        nsfw: per hit, whether its frame lies in one of its input's NSFW
            segments (:meth:`pipeline.serve.library.Report.nsfw_at`, the rule
            the HTML report and ``serve`` blur by): such a tile is blurred
            past recognition, framed red and captioned ``NSFW``.
    """
    from PIL import Image, ImageDraw

    from pipeline.report.plot import NSFW_COLOUR  # a constant: matplotlib is not imported

    images = _thumbnails(hits, thumb)
    cols = max(1, min(columns, len(hits)))
    rows = max(1, -(-len(hits) // cols))
    cw, ch = SHEET_CELL
    sheet = Image.new("RGB", (cw * cols, ch * rows + SHEET_TITLE_H), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        _centred_text(draw, (0, 0, sheet.width, SHEET_TITLE_H), title, _font(15), "black")
    for i, hit in enumerate(hits):
        x, y = (i % cols) * cw, (i // cols) * ch + SHEET_TITLE_H
        hidden = i < len(nsfw) and bool(nsfw[i])
        _centred_text(draw, (x, y, x + cw, y + 22), ("NSFW  " if hidden else "") + caption(hit), _font(11),
                      NSFW_COLOUR if hidden else "black")
        _paste_tile(sheet, draw, images[i], hidden, (x + 5, y + 24, x + cw - 5, y + ch - 6))
    path = Path(out_dir) / f"{stem}.png"
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
    return path


def _paste_tile(sheet, draw, image: np.ndarray | None, hidden: bool, box: tuple[int, int, int, int]) -> None:
    """The thumbnail fitted into ``box`` (aspect kept, centred); grey saying
    ``unreadable`` without one; a hidden (NSFW) one blurred and framed red."""
    from PIL import Image

    from pipeline.report.plot import NSFW_COLOUR

    x0, y0, x1, y1 = box
    if image is None:
        height = min(y1 - y0, (x1 - x0) * 9 // 16)
        top = y0 + (y1 - y0 - height) // 2
        draw.rectangle((x0, top, x1, top + height), fill=(200, 200, 200))
        _centred_text(draw, (x0, top, x1, top + height), "unreadable", _font(11), "black")
        return
    tile = Image.fromarray(_blurred(image) if hidden else image)
    tile.thumbnail((x1 - x0, y1 - y0), Image.Resampling.LANCZOS)
    left, top = x0 + (x1 - x0 - tile.width) // 2, y0 + (y1 - y0 - tile.height) // 2
    sheet.paste(tile, (left, top))
    if hidden:
        frame = (left, top, left + tile.width - 1, top + tile.height - 1)
        draw.rectangle(frame, outline=NSFW_COLOUR, width=3)


def _centred_text(draw, box: tuple[int, int, int, int], text: str, font, fill) -> None:
    """``text`` centred in ``box``, cut with an ellipsis to its width."""
    x0, y0, x1, y1 = box
    while len(text) > 1 and draw.textlength(text, font=font) > x1 - x0 - 4:
        text = text[:-2] + "…"
    draw.text(((x0 + x1) / 2, (y0 + y1) / 2), text, font=font, fill=fill, anchor="mm")


@functools.lru_cache(maxsize=8)
def _font(size: int):
    """DejaVu Sans (matplotlib's, found without importing it: the glyphs the
    plots have), else Pillow's own scalable default."""
    import importlib.util

    from PIL import ImageFont

    spec = importlib.util.find_spec("matplotlib")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


def _blurred(image: np.ndarray) -> np.ndarray:
    """A frame blurred past recognition (as the pages' CSS ``blur(14px)`` on a
    224-pixel thumbnail): a Gaussian of 1/16 of the short side."""
    from PIL import Image, ImageFilter

    radius = max(2.0, min(image.shape[:2]) / 16)
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))


def caption(hit: Hit) -> str:
    """A contact-sheet tile's caption: ``file  mm:ss.mmm  score``."""
    from pipeline.report.text import clock

    return f"{_short(Path(hit.input_path).name)}  {clock(hit.time_s)}  {hit.score:.3f}"


def _thumbnails(hits: list[Hit], size: int) -> list[np.ndarray | None]:
    """One frame per hit, reading each input once for all its times."""
    from pipeline.decode import read_frames_at

    out: list[np.ndarray | None] = [None] * len(hits)
    by_path: dict[str, list[int]] = {}
    for i, hit in enumerate(hits):
        by_path.setdefault(hit.input_path, []).append(i)
    for path, positions in by_path.items():
        try:
            frames = read_frames_at(path, [hits[i].time_s for i in positions], short_side=size)
        except Exception as ex:  # a moved or damaged file costs its tiles, not the sheet
            log.warning("cannot read thumbnails from %s: %s", path, " ".join(str(ex).split()))
            continue
        for i, frame in zip(positions, frames, strict=False):  # a short read leaves tiles blank
            out[i] = frame.image
    return out


def _short(name: str, limit: int = 24) -> str:
    return name if len(name) <= limit else name[:limit - 1] + "…"
