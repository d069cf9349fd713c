"""Strings that leave the tool: how a label is cleaned for an export, how a
CSV cell is kept from being read as a formula, and how a time reads to a
person. One place for each rule, so every writer applies the same one.

Standard library only: the CLI imports this without pandas or matplotlib.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePath

# Bidirectional embedding/override/isolate marks (Unicode category Cf): one
# U+202E in a label reverses the rest of a report row or a cue.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Controls that separate text (tabs, line and paragraph breaks) become a
# space; other controls (NUL, ESC, ...) are dropped.
_SEPARATORS = frozenset("\t\n\v\f\r\x1c\x1d\x1e\x1f\x85\u2028\u2029")
# OWASP "CSV injection": a cell starting with one of these is a formula in
# Excel, LibreOffice and Google Sheets.
_FORMULA_START = frozenset("=+-@\t\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def clean_label(text: object) -> str:
    """``text`` without control characters (Unicode ``Cc``), line and
    paragraph separators (``Zl``, ``Zp``) or bidirectional controls.

    Separating controls (tab, newline, U+2028, ...) become a space, the rest
    (NUL, ESC, U+202E, ...) are removed; everything else, emoji joiners
    included, is kept. Used on every label, name and message an export
    (HTML, WebVTT, EDL) shows.
    """
    out = []
    for ch in str(text):
        if ch in _SEPARATORS:
            out.append(" ")
        elif ch in _BIDI or unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            continue
        else:
            out.append(ch)
    return "".join(out)


def csv_cell(value: object) -> object:
    """A CSV cell that no spreadsheet evaluates: a string starting with
    ``= + - @``, tab or CR gets a leading ``'`` (OWASP's rule).

    Strings that are plain numbers (``-0.25``, ``1e-3``) and non-strings are
    returned as they are, so numbers stay numbers. A string already starting
    with ``'`` before such a character gets one more, so
    :func:`uncsv_cell` gives back exactly what was written.
    """
    if not isinstance(value, str):
        return value
    bare = value.lstrip("'")
    if bare[:1] in _FORMULA_START and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def uncsv_cell(value: object) -> object:
    """Undo :func:`csv_cell` for a cell read back from a CSV this tool wrote."""
    if isinstance(value, str) and value.startswith("'") and value.lstrip("'")[:1] in _FORMULA_START:
        return value[1:]
    return value


# FFmpeg names a demuxer by every format it reads ("mov,mp4,m4a,3gp,3g2,mj2");
# which one a file is, its extension tells (as a person would name it).
_BY_EXTENSION = {
    "mov": {".mp4": "MP4", ".m4v": "MP4", ".mov": "QuickTime (MOV)", ".qt": "QuickTime (MOV)",
            ".m4a": "M4A", ".3gp": "3GP", ".3g2": "3G2", ".mj2": "Motion JPEG 2000"},
    "matroska": {".mkv": "Matroska (MKV)", ".mk3d": "Matroska (MKV)", ".webm": "WebM"},
}
_FORMAT_NAMES = {"mov": "MP4 / QuickTime", "matroska": "Matroska / WebM", "avi": "AVI",
                 "mpegts": "MPEG-TS", "mpeg": "MPEG-PS", "flv": "FLV", "ogg": "Ogg", "asf": "ASF (WMV)",
                 "mxf": "MXF", "gif": "GIF", "h264": "raw H.264", "hevc": "raw HEVC", "rawvideo": "raw video",
                 "image2": "image", "yuv4mpegpipe": "Y4M", "dv": "DV", "nut": "NUT", "hls": "HLS",
                 "rtsp": "RTSP", "v4l2": "V4L2 camera"}


def container_name(demuxer: str, path: str = "") -> str:
    """The file format a person calls it, from FFmpeg's demuxer name and the
    file's extension: ``("mov,mp4,m4a,3gp,3g2,mj2", "a.mp4")`` → ``"MP4"``,
    ``("matroska,webm", "a.webm")`` → ``"WebM"``; a demuxer it does not know
    is shown by its own name."""
    first = (demuxer or "").split(",")[0].strip().lower()
    named = _BY_EXTENSION.get(first, {}).get(PurePath(path).suffix.lower()) or _FORMAT_NAMES.get(first)
    return named or demuxer or "unknown"


def hms(t_s: float) -> str:
    """``hh:mm:ss.mmm`` (WebVTT's timestamp form, also shown in the HTML)."""
    h, m, s, ms = _split(t_s)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def clock(t_s: float) -> str:
    """A time for people: ``mm:ss.mmm``, or ``h:mm:ss.mmm`` from an hour on
    (``5.533`` → ``00:05.533``, ``3725.5`` → ``1:02:05.500``)."""
    h, m, s, ms = _split(t_s)
    return f"{h}:{m:02d}:{s:02d}.{ms:03d}" if h else f"{m:02d}:{s:02d}.{ms:03d}"


def _split(t_s: float) -> tuple[int, int, int, int]:
    ms = max(0, round(t_s * 1000))
    s, ms = divmod(ms, 1000)
    m, s = divmod(s, 60)
    h, m = divmod(m, 60)
    return h, m, s, ms


def plain_text(fig) -> None:
    """Draw every text of a matplotlib figure as typed: no mathtext, no TeX.

    A ``$`` in a label, query or file name (``cost $_$ total.mp4``) is then
    a dollar sign rather than a formula that fails to parse. Call it after
    the last text is added (titles, legends) and before layout or saving.
    """
    from matplotlib.text import Text

    for artist in fig.findobj(Text):
        artist.set_usetex(False)
        artist.set_parse_math(False)
