"""A corpus of hostile and unusual inputs, generated at test time with PyAV.

One function per kind; each writes its input(s) under ``folder`` and returns a
:class:`Case` naming the path to hand the CLI and the expected outcome:
``"ok"`` (processed, with sane frame times) or ``"error"`` (a one-line
reason in summary.json / index.csv / stderr while the rest of the run goes
on). A kind this machine cannot produce (no encoder, running as root) comes
back with ``skip`` set to the reason.

Everything is tiny (tens of frames, 32-96 px) except where size is the point
(``long``: 20 minutes at 1 fps, 32x32; ``huge_8k``: two 7680x4320 frames).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import media
import numpy as np
from media import make_clip, make_rotated_clip, make_vfr_clip

OK, ERROR = "ok", "error"


@dataclass
class Case:
    """One corpus input and what a run must make of it.

    Attributes:
        kind: the corpus kind (function name without ``make_``).
        path: the input path to pass to the CLI.
        expect: ``"ok"`` or ``"error"``.
        also: further inputs that belong to this case and must be passed
            *before* ``path`` (e.g. the first of two same-named files).
        error_hint: a lower-case substring the one-line error must contain.
        duration_s: the true stream duration, for time-range checks.
        pts_s: every frame's true PTS (VFR), relative to the stream start.
        rotation: display rotation metadata the decoder must undo.
        displayed: ``(width, height)`` after rotation, as summary.json reports it.
        damaged: decode stats must record damage (corrupt packets or a note).
        skip: why this kind cannot be produced here (None: it can).
    """

    kind: str
    path: str
    expect: str
    also: list[str] = field(default_factory=list)
    error_hint: str | None = None
    duration_s: float | None = None
    pts_s: list[float] | None = None
    rotation: int = 0
    displayed: tuple[int, int] | None = None
    damaged: bool = False
    skip: str | None = None


def _has_encoder(name: str) -> bool:
    return name in av.codecs_available


# --------------------------------------------------------------------------- broken inputs


def make_zero_byte(folder: Path) -> Case:
    return Case("zero_byte", media.make_zero_byte(folder / "zero.mp4"), ERROR, error_hint="zero-byte")


def make_text_as_mp4(folder: Path) -> Case:
    return Case("text_as_mp4", media.make_text_as_mp4(folder / "notes.mp4"), ERROR, error_hint="cannot open")


def make_audio_only(folder: Path) -> Case:
    return Case("audio_only", media.make_audio_only(folder / "tone.mp4"), ERROR, error_hint="no video stream")


def make_missing(folder: Path) -> Case:
    return Case("missing", str(folder / "does-not-exist.mp4"), ERROR, error_hint="not found")


def make_text_as_jpg(folder: Path) -> Case:
    path = folder / "photo.jpg"
    path.write_text("not a JPEG at all\n", encoding="utf-8")
    return Case("text_as_jpg", str(path), ERROR)


def make_no_frames(folder: Path) -> Case:
    """A valid MKV with a video stream header but not a single packet."""
    path = folder / "noframes.mkv"
    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    container.start_encoding()  # write the header even though no packet follows
    container.close()
    return Case("no_frames", str(path), ERROR)


def make_garbage_header(folder: Path) -> Case:
    """An MP4's first 4 KiB overwritten with noise: the container will not open."""
    src = make_clip(folder / "_garbage_src.mp4", seconds=1, fps=10)
    data = bytearray(Path(src).read_bytes())
    data[:4096] = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    path = folder / "garbage.mp4"
    path.write_bytes(bytes(data))
    os.remove(src)
    return Case("garbage_header", str(path), ERROR)


def make_unreadable(folder: Path) -> Case:
    path = Path(make_clip(folder / "locked.mp4", seconds=1, fps=10))
    path.chmod(0)
    if os.access(path, os.R_OK):  # root (or CAP_DAC_OVERRIDE) reads through chmod 000
        path.chmod(0o644)
        return Case("unreadable", str(path), ERROR,
                    skip="running as root: chmod 000 does not block reads")
    return Case("unreadable", str(path), ERROR, error_hint="permission denied")


def make_folder_named_mp4(folder: Path) -> Case:
    """A folder (with no media in it) whose name looks like a video."""
    path = folder / "folder.mp4"
    path.mkdir()
    (path / "readme.txt").write_text("nothing here", encoding="utf-8")
    return Case("folder_named_mp4", str(path), ERROR, error_hint="no videos or images")


def make_binary_list_txt(folder: Path) -> Case:
    """A ``.txt`` input list that is not UTF-8 text."""
    path = folder / "list.txt"
    path.write_bytes(b"\xff\xfe\x00\x81 not utf-8\n")
    return Case("binary_list_txt", str(path), ERROR, error_hint="cannot read list file")


# --------------------------------------------------------------------------- damaged but usable


def make_truncated(folder: Path) -> Case:
    """An MKV cut at 60 %: the first part decodes, the end is missing."""
    src = make_clip(folder / "_trunc_src.mkv", seconds=4, fps=25, gop=10)
    path = media.make_truncated(src, folder / "truncated.mkv", 0.6)
    os.remove(src)
    return Case("truncated", path, OK, duration_s=4.0, damaged=True)


def make_corrupted(folder: Path) -> Case:
    """An MKV with 300 random bytes written 40 % of the way in: the demuxer
    resyncs, so frames on both sides of the damage decode."""
    src = make_clip(folder / "_corrupt_src.mkv", seconds=4, fps=25, gop=10, size=(96, 64))
    path = media.make_corrupted(src, folder / "corrupted.mkv", at=0.4, nbytes=300, seed=3)
    os.remove(src)
    return Case("corrupted", path, OK, duration_s=4.0, damaged=True)


def make_damaged_frame(folder: Path) -> Case:
    """An MP4 with 300 random bytes inside one non-reference B-frame's slice
    data and nowhere else: the demuxer sees nothing, FFmpeg's decoder conceals
    the frame. Under frame threads FFmpeg flags such a frame corrupt racily
    (28-49 of 60 decodes flagged it; reference frames 60 of 60), so only its
    log lines tell every decode. Not in :data:`KINDS`: ``fast`` (the CLI
    run's auto choice) never decodes that frame, so there is nothing to see."""
    path = folder / "damaged_frame.mp4"
    clean = _textured_clip(folder / "_damaged_src.mp4")
    data = Path(clean).read_bytes()
    for pos, size in _b_frame_packets(clean):
        at = pos + size // 10  # past the slice header, with slice data left after the noise
        damaged = data[:at] + np.random.default_rng(pos).bytes(300) + data[at + 300:]
        path.write_bytes(damaged)
        if _concealed_frames(str(path)) == 1:
            break
    else:
        raise AssertionError("no B-frame of the textured clip conceals cleanly")
    os.remove(clean)
    return Case("damaged_frame", str(path), OK, duration_s=4.0, damaged=True)


def _textured_clip(path: Path) -> str:
    """4 s of a drifting noisy texture at 25 fps, 160x96, B-frames: frames big
    enough (600-2800 bytes) to hold 300 bytes of damage inside one of them."""
    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=25, options={
        "preset": "veryfast", "crf": "23", "x264-params": "bframes=2:b-adapt=0:scenecut=0:threads=1"})
    stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
    stream.codec_context.gop_size = 25
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (96, 400, 3)).astype(np.int16)
    for i in range(100):
        noisy = texture[:, 2 * i:2 * i + 160] + rng.integers(-30, 30, (96, 160, 3))
        frame = av.VideoFrame.from_ndarray(np.clip(noisy, 0, 255).astype(np.uint8), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return str(path)


def _b_frame_packets(path: str) -> list[tuple[int, int]]:
    """(file offset, size) of the non-reference B-frames' packets from 40 % of the clip on."""
    b_frames = {pts for pts, kind in _picture_types(path).items() if kind == av.video.frame.PictureType.B}
    b_frames -= set(_picture_types(path, skip="NONREF"))  # what a NONREF skip still decodes is a reference
    with av.open(path) as container:
        packets = [(p.pts, p.pos, p.size) for p in container.demux(container.streams.video[0]) if p.size]
    later = packets[len(packets) * 2 // 5:]
    return [(pos, size) for pts, pos, size in later if pts in b_frames and size > 500]


def _picture_types(path: str, skip: str | None = None) -> dict[int, int]:
    """PTS -> picture type of every frame a single-threaded decode gives."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        if skip:
            stream.codec_context.skip_frame = skip
        return {vf.pts: vf.pict_type for vf in container.decode(stream)}


def _concealed_frames(path: str) -> int:
    """Frames a single-threaded decode flags corrupt (-1 when a packet fails outright)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"  # one thread: FFmpeg's corrupt flag is reliable
        try:
            return sum(vf.is_corrupt for vf in container.decode(stream))
        except av.FFmpegError:
            return -1


# --------------------------------------------------------------------------- unusual but valid


def make_good(folder: Path) -> Case:
    return Case("good", make_clip(folder / "good.mp4", seconds=3, fps=10), OK, duration_s=3.0)


def make_one_frame(folder: Path) -> Case:
    return Case("one_frame", make_clip(folder / "single.mp4", seconds=0.1, fps=10), OK,
                duration_s=0.1)


def make_odd_size_444(folder: Path) -> Case:
    path = make_clip(folder / "odd 321x241.mkv", seconds=1, fps=10, size=(321, 241), pix_fmt="yuv444p")
    return Case("odd_size_444", path, OK, duration_s=1.0, displayed=(321, 241))


def make_hevc_10bit(folder: Path) -> Case:
    path = folder / "hevc10.mkv"
    if not _has_encoder("libx265"):
        return Case("hevc_10bit", str(path), OK, skip="this PyAV's FFmpeg has no libx265 encoder")
    make_clip(path, seconds=1, fps=10, codec="libx265", pix_fmt="yuv420p10le")
    return Case("hevc_10bit", str(path), OK, duration_s=1.0)


def make_vp9_webm(folder: Path) -> Case:
    path = folder / "clip.webm"
    if not _has_encoder("libvpx-vp9"):
        return Case("vp9_webm", str(path), OK, skip="this PyAV's FFmpeg has no libvpx-vp9 encoder")
    make_clip(path, seconds=1, fps=10, codec="libvpx-vp9")
    return Case("vp9_webm", str(path), OK, duration_s=1.0)


def make_av1(folder: Path) -> Case:
    path = folder / "av1.mkv"
    encoder = next((e for e in ("libsvtav1", "libaom-av1", "librav1e") if _has_encoder(e)), None)
    if encoder is None:
        return Case("av1", str(path), OK, skip="no AV1 encoder (libsvtav1/libaom-av1/librav1e)")
    make_clip(path, seconds=1, fps=10, size=(64, 64), codec=encoder)
    return Case("av1", str(path), OK, duration_s=1.0)


def make_mpeg4_avi(folder: Path) -> Case:
    return Case("mpeg4_avi", make_clip(folder / "old.avi", seconds=1, fps=10, codec="mpeg4"), OK,
                duration_s=1.0)


def make_animated_gif(folder: Path) -> Case:
    return Case("animated_gif", make_clip(folder / "anim.gif", seconds=1, fps=10, codec="gif",
                                          pix_fmt="rgb8"), OK, duration_s=1.0)


def make_portrait(folder: Path) -> Case:
    path = make_clip(folder / "portrait.mp4", seconds=1, fps=10, size=(48, 96))
    return Case("portrait", path, OK, duration_s=1.0, displayed=(48, 96))


def make_rotated(folder: Path) -> Case:
    """Coded 48x64 (sideways), display matrix says rotate 90: shown as 64x48."""
    path = make_rotated_clip(folder / "phone.mp4", rotation=90, seconds=1, fps=10, size=(64, 48))
    return Case("rotated", path, OK, duration_s=1.0, rotation=90, displayed=(64, 48))


def make_start_offset(folder: Path) -> Case:
    """MPEG-TS starts its clock at 1.4 s; times must still start at 0."""
    path = make_clip(folder / "broadcast.ts", seconds=2, fps=10)
    return Case("start_offset", path, OK, duration_s=2.0)


def make_vfr(folder: Path) -> Case:
    pts = [0.0, 0.04, 0.08, 0.5, 0.52, 1.3, 1.333, 2.1, 2.2, 2.9]
    return Case("vfr", make_vfr_clip(folder / "vfr.mp4", pts), OK, duration_s=3.0, pts_s=pts)


def make_long(folder: Path) -> Case:
    """20 minutes of 32x32 at 1 fps (1200 frames, a few hundred KB)."""
    path = make_clip(folder / "long.mp4", seconds=1200, fps=1, size=(32, 32), pattern="solid")
    return Case("long", path, OK, duration_s=1200.0)


def make_huge_8k(folder: Path) -> Case:
    """Two 7680x4320 frames; the decoder must resize, not hand 8K to the model."""
    path = make_clip(folder / "huge.mp4", seconds=0.08, fps=25, size=(7680, 4320), pattern="solid")
    return Case("huge_8k", path, OK, duration_s=0.08, displayed=(7680, 4320))


# --------------------------------------------------------------------------- awkward paths


def make_spaces_non_ascii(folder: Path) -> Case:
    sub = folder / "dir with spaces ü"
    sub.mkdir()
    path = make_clip(sub / "my clip — ñandú 日本.mp4", seconds=1, fps=10)
    return Case("spaces_non_ascii", path, OK, duration_s=1.0)


def make_symlink(folder: Path) -> Case:
    target = make_clip(folder / "_link_target.mkv", seconds=1, fps=10)
    link = folder / "linked.mkv"
    link.symlink_to(target)
    return Case("symlink", str(link), OK, duration_s=1.0)


def make_duplicate_name(folder: Path) -> Case:
    """Two different ``dup.mp4`` from two folders: both must get their own outputs."""
    first, second = folder / "dup_a", folder / "dup_b"
    first.mkdir()
    second.mkdir()
    make_clip(first / "dup.mp4", seconds=1, fps=10)
    path = make_clip(second / "dup.mp4", seconds=2, fps=10)
    return Case("duplicate_name", path, OK, also=[str(first / "dup.mp4")], duration_s=2.0)


def make_dot_name(folder: Path) -> Case:
    """A file called ``..mp4``: its output folder must not be ``.``/``..``."""
    path = make_clip(folder / "..mp4", seconds=1, fps=10)
    return Case("dot_name", path, OK, duration_s=1.0)


KINDS: dict[str, Callable[[Path], Case]] = {
    fn.__name__.removeprefix("make_"): fn
    for fn in (
        make_zero_byte, make_text_as_mp4, make_audio_only, make_missing, make_text_as_jpg,
        make_no_frames, make_garbage_header, make_unreadable, make_folder_named_mp4, make_binary_list_txt,
        make_truncated, make_corrupted,
        make_good, make_one_frame, make_odd_size_444, make_hevc_10bit, make_vp9_webm, make_av1,
        make_mpeg4_avi, make_animated_gif, make_portrait, make_rotated, make_start_offset, make_vfr,
        make_long, make_huge_8k,
        make_spaces_non_ascii, make_symlink, make_duplicate_name, make_dot_name,
    )
}


def build_corpus(folder: Path) -> dict[str, Case]:
    """Every kind, written under ``folder``; keyed by kind."""
    folder.mkdir(parents=True, exist_ok=True)
    return {kind: make(folder) for kind, make in KINDS.items()}


def cli_inputs(cases: dict[str, Case]) -> list[str]:
    """The input list for one CLI run over every non-skipped case."""
    inputs: list[str] = []
    for case in cases.values():
        if case.skip is None:
            inputs += case.also + [case.path]
    return inputs

