"""Small files, large pictures (issue 27, item 10): a picture's size is read
from its header and capped before anything is decoded. Over the cap a JPEG
is decoded at a reduced scale (Pillow's ``draft``), anything else is refused
in one line: a 400 from serve's picture search, a config error for a
label's example pictures. Named pipes are never opened for reading."""

from __future__ import annotations

import json
import os

import pytest
from serve_helpers import StubEmbedder, finishes, png_of_size, release_fifo, serving, upload

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """PNGs that are small files and huge pictures: 7000² (over the cap,
    under Pillow's own bomb limit) and 30000² (over Pillow's limit)."""
    folder = tmp_path_factory.mktemp("big-pictures")
    out = {}
    for side in (7000, 30000):
        path = folder / f"big{side}.png"
        path.write_bytes(png_of_size(side, side))
        out[side] = path
    return out


@pytest.mark.parametrize("side", [7000, 30000])
def test_a_huge_upload_is_refused_in_one_line_before_decoding(tmp_path, pictures, side):
    """Before: 7000² was decoded in full under the model lock (13300² took
    serve from 0.83 to 2.9 GB); 30000² was a 500 (DecompressionBombError)."""
    from pipeline.serve.library import Input, Library

    data = pictures[side].read_bytes()
    assert len(data) < 1 << 20  # a small file
    embedder = StubEmbedder()
    with serving(Library([Input(id="0" * 16, path="/nonexistent/a.mp4", hashes=frozenset(),
                             duration_s=1, step_s=1)]), tmp_path, embedder=embedder) as running:
        status, _, body = upload(running, data, "big.png")
    assert status == 400, body[:300]
    detail = json.loads(body)["detail"]
    assert "pixels" in detail and "MP" in detail and "\n" not in detail, detail
    assert side != 7000 or "7000x7000" in detail, detail
    assert embedder.images == []  # the model never saw it


def test_the_cap_is_read_from_the_header(pictures, monkeypatch):
    """The shared check (used by serve, image inputs and example pictures)
    raises before decoding, whatever the decoded size would cost."""
    from pipeline.decode.images import MAX_PICTURE_PIXELS, open_picture
    from pipeline.types import VideoOpenError

    assert 20_000_000 <= MAX_PICTURE_PIXELS <= 100_000_000
    for path in pictures.values():
        done, error = finishes(lambda p=path: _error_of(lambda: open_picture(p).__enter__()), 10)
        assert done and isinstance(error, VideoOpenError) and "pixels" in str(error)
    with open_picture(pictures[7000], max_pixels=7000 * 7000) as picture:  # a cap of its own
        assert picture.image.size == (picture.width, picture.height) == (7000, 7000)


def _error_of(fn):
    try:
        fn()
    except Exception as ex:  # noqa: BLE001 - returned for the test to look at
        return ex
    return None


def test_a_jpeg_over_the_cap_is_decoded_at_a_reduced_scale(tmp_path, monkeypatch):
    """A big JPEG is still read (a 61 MP photo is common), at 1/2 to 1/8
    scale, and keeps its native size in the frame's info."""
    from PIL import Image

    from pipeline.decode import images
    from pipeline.decode.images import ImageDecoder
    from pipeline.types import Sampling

    path = tmp_path / "photo.jpg"
    Image.new("RGB", (1600, 1200), (200, 30, 30)).save(path, quality=90)
    monkeypatch.setattr(images, "MAX_PICTURE_PIXELS", 200_000)
    with ImageDecoder(str(path)) as decoder:
        [frame] = list(decoder.frames(Sampling()))
        info = decoder.info
    assert (info.width, info.height) == (1600, 1200)
    h, w, _ = frame.image.shape
    assert w * h <= 200_000 and (w, h) == (400, 300)  # decoded at 1/4
    png = tmp_path / "photo.png"
    Image.new("RGB", (1600, 1200)).save(png)
    from pipeline.types import VideoOpenError

    with pytest.raises(VideoOpenError, match=r"1600x1200.*pixels"), ImageDecoder(str(png)):
        pass


def test_example_pictures_get_the_same_cap(pictures):
    """``labels[].images`` go through the same check: a config error, no decode."""
    from pipeline.embed.exemplars import picture_embedder
    from pipeline.types import ConfigError

    embedder = StubEmbedder()
    with pytest.raises(ConfigError, match=r"example picture .*7000x7000.*pixels"):
        picture_embedder(embedder)([str(pictures[7000])])
    assert embedder.images == []


def test_a_named_pipe_picture_is_refused_at_once(tmp_path):
    """Item 10: a FIFO where a picture should be is refused, never waited on
    (a regression guard: the decoder's own check already caught it before
    opening; open_picture now checks the descriptor it opened)."""
    from pipeline.decode.images import ImageDecoder
    from pipeline.types import VideoOpenError

    fifo = tmp_path / "picture.jpg"
    os.mkfifo(fifo)
    try:
        done, error = finishes(lambda: _error_of(lambda: ImageDecoder(str(fifo)).__enter__()), 10)
        assert done, "the image decoder blocked on a named pipe"
        assert isinstance(error, VideoOpenError) and "named pipe" in str(error)
    finally:
        release_fifo(fifo)


def test_a_normal_upload_still_reaches_the_model(tmp_path):
    """The cap changes nothing for ordinary pictures: read in full, as before."""
    from PIL import Image

    from pipeline.decode.images import ImageDecoder
    from pipeline.types import Sampling

    path = tmp_path / "ok.png"
    Image.new("RGB", (640, 480), (10, 200, 10)).save(path)
    with ImageDecoder(str(path)) as decoder:
        [frame] = list(decoder.frames(Sampling()))
    assert frame.image.shape == (480, 640, 3)
