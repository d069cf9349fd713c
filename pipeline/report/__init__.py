"""Reports: per-video CSV, timeline plot, summary JSON, HTML report and
exports for players and editors (WebVTT, EDL, and the timelines of
:mod:`pipeline.report.timeline_files`: OTIO, FCPXML, chapters, events EDLs), plus run-level tables, and
:func:`regenerate`, which rewrites the exports from a finished run's files
(``scenetag report DIR``). Plain functions; every file is written atomically.

pandas and matplotlib are imported on first use, not when this package is
imported, so the CLI stays quick to start.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from pipeline.report.notes import decode_stats, partial_note  # noqa: F401 (for pipeline.run.job)
from pipeline.types import PipelineError, VideoResult

log = logging.getLogger(__name__)

TIMELINE_FORMATS = ("otio", "fcpxml", "chapters", "edl-events")  # see pipeline.report.timeline_files
PLAIN_FORMATS = ("csv", "plot", "json", "html", "vtt", "edl", "thumbs")
FORMATS = (*PLAIN_FORMATS, *TIMELINE_FORMATS)
# written from a result alone, so `scenetag report` can redo them without a model
EXPORT_FORMATS = ("html", "vtt", "edl", "thumbs", *TIMELINE_FORMATS)


def write_video_outputs(result: VideoResult, out_dir: str | Path,
                        formats: Sequence[str] = PLAIN_FORMATS, *, top_frames: int = 0) -> list[Path]:
    """Write one input's reports into ``out_dir`` (created as needed).

    ``csv`` writes ``frames.csv`` and ``segments.csv``, ``plot`` writes
    ``timeline.png``; ``shots.csv`` and ``cues.csv`` come whenever the
    result has shots (``shots.enabled``); ``html``, ``vtt``, ``edl`` and ``thumbs`` are the
    exports of :func:`write_exports`, and ``top_frames`` > 0 saves that many
    best frames per label. ``summary.json`` is written whatever ``formats``
    say (``json`` is accepted and changes nothing), and always last: it is
    the completion marker that ``--resume``, ``scenetag report`` and the run
    index rely on. A failed input gets only ``summary.json``: it has no
    frames to tabulate or plot. Format names this build cannot write are
    skipped with a warning.

    Returns:
        the paths written.
    """
    from pipeline.report import plot, tables

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wanted = set(formats)
    unknown = sorted(wanted - set(FORMATS))
    if unknown:
        log.warning("report formats not available, skipped: %s", ", ".join(unknown))
    written: list[Path] = []
    if result.status == "ok" and "csv" in wanted:
        written += [tables.write_frames_csv(result, out), tables.write_segments_csv(result, out)]
    if result.status == "ok" and "plot" in wanted:
        written.append(plot.write_timeline_png(result, out))
    if result.status == "ok" and result.shots is not None:  # the run looked for shots
        from pipeline.report import timeline_files

        written += [timeline_files.write_shots_csv(result.shots, out),
                    timeline_files.write_cues_csv(result.cues or [], out)]
    written += write_exports(result, out, [f for f in formats if f in EXPORT_FORMATS],
                             top_frames=top_frames)
    written.append(tables.write_summary_json(result, out))  # the completion marker: always, last
    return written


def write_exports(result: VideoResult, out_dir: str | Path, formats: Sequence[str],
                  *, top_frames: int = 0, pictures=None) -> list[Path]:
    """Write the exports a finished result alone suffices for (no model):
    ``html`` → ``report.html`` with ``thumbs/``; ``thumbs`` → ``thumbs/``
    only; ``vtt`` → ``tags.vtt``; ``edl`` → ``markers.edl``; any of the
    three → ``segments.json``; ``otio``, ``fcpxml``, ``chapters`` and
    ``edl-events`` → the files of
    :func:`pipeline.report.timeline_files.write_timeline_files`. Failed inputs get none (``index.html`` shows
    their error). Thumbnails are re-read from the input, or come from
    ``pictures`` (see :func:`pipeline.report.stills.write_segment_thumbs`).
    Returns the paths written."""
    from pipeline.report import exports, html, stills, timeline_files

    out, wanted = Path(out_dir), set(formats)
    if result.status != "ok":
        return []
    written: list[Path] = stills.write_top_frames(result, out, top_frames)
    if "vtt" in wanted:
        written.append(exports.write_vtt(result, out))
    if "edl" in wanted:
        written.append(exports.write_edl(result, out))
    if wanted & {"html", "vtt", "edl"}:
        written.append(exports.write_segments_json(result, out))
    if "html" in wanted:
        written.append(html.write_report_html(result, out, pictures=pictures))
    elif "thumbs" in wanted:
        written += [out / p for p in stills.write_segment_thumbs(result, out, pictures=pictures).values()]
    written += timeline_files.write_timeline_files(result, out, formats,
                                                   labels=[t.name for t in result.tracks if t.kind == "tag"])
    return written


def write_run_outputs(results: Sequence[VideoResult], out_dir: str | Path,
                      formats: Sequence[str] = ()) -> list[Path]:
    """Write the run-level ``index.csv`` (one row per input, failures
    included) into ``out_dir``, and ``index.html`` when ``html`` is among
    ``formats``. ``scenetag run`` passes every input folder of the output,
    not only the run's own (see ``pipeline.run.job``). Returns the paths written."""
    from pipeline.report import tables

    written = [tables.write_index_csv(results, out_dir)]
    if "html" in formats:
        from pipeline.report import html

        written.append(html.write_index_html(results, out_dir))
    return written


def write_images_csv(images: Sequence, out_dir: str | Path) -> Path:
    """Write ``images.csv`` for still images (``pipeline.analysis.analyse.ImageResult``);
    see :func:`pipeline.report.tables.write_images_csv`."""
    from pipeline.report import tables

    return tables.write_images_csv(images, out_dir)


def regenerate(folder: str | Path, formats: Sequence[str] | None = None,
               top_frames: int = 0) -> list[VideoResult]:
    """Rewrite HTML reports and exports from a finished run's files, no model.

    Args:
        folder: a ``scenetag run`` output folder (every ``*/summary.json``
            below it is an input) or one input's folder.
        formats: any of :data:`EXPORT_FORMATS` (default
            ``html, vtt, edl``); CSVs, the plot and ``summary.json`` are never
            rewritten.
        top_frames: also save this many best frames per label.

    Returns:
        the results loaded, in folder order.

    Raises:
        PipelineError: no ``summary.json`` was found, or a format is not one
            of :data:`EXPORT_FORMATS`.
    """
    from pipeline.report.html import write_index_html
    from pipeline.report.readback import load_result

    folder = Path(folder)
    single = (folder / "summary.json").is_file()
    dirs = [folder] if single else sorted(p.parent for p in folder.glob("*/summary.json")
                                          if not p.parent.name.startswith("."))  # temporaries
    if not dirs:
        raise PipelineError(f"{folder}: no summary.json found; is it a `scenetag run` output folder?")
    wanted = list(formats or ("html", "vtt", "edl"))
    unknown = [f for f in wanted if f not in EXPORT_FORMATS]
    if unknown:
        raise PipelineError(f"scenetag report writes {', '.join(EXPORT_FORMATS)}; "
                            f"not {', '.join(unknown)}")
    results = []
    for d in dirs:
        result = load_result(d)
        write_exports(result, d, wanted, top_frames=top_frames)
        results.append(result)
    if not single and "html" in wanted:
        write_index_html(results, folder)
    return results
