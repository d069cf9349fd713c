"""``scenetag clips``: cut a finished run's segments out of their sources,
one file per segment (:mod:`pipeline.clips.plan` names and pads them,
:mod:`pipeline.clips.cut` cuts), and optionally one supercut of them all.
Reads each input folder's ``segments.csv`` and ``summary.json`` (the source's
path); loads no model.

Exit codes as ``run``'s: 2 when nothing can be done (no segments in the
folder, bad flags, a supercut that cannot be written), 1 when some input
failed (its source moved, its clips could not be written); the other
inputs' clips are still written. Every file is written whole or not at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pipeline.cli.messages import EXIT_INPUT_FAILED, EXIT_OK, error, guarded, plural
from pipeline.cli.options import DebugOpt, QuietOpt
from pipeline.types import PipelineError


def _input_folders(run_dir: Path) -> list[Path]:
    """The input folders under ``run_dir`` holding ``segments.csv`` (or
    ``run_dir`` itself when it is one)."""
    if (run_dir / "segments.csv").is_file():
        return [run_dir]
    return sorted(p.parent for p in run_dir.glob("*/segments.csv")
                  if not p.parent.name.startswith(".") and (p.parent / "summary.json").is_file())


def clips_cmd(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", exists=True, file_okay=False,
                                            help="A `scenetag run` output folder, or one input's folder.")],
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="DIR",
        help="Where the clips go: DIR/<input>/<label>-<n>-<mm.ss.mmm>.<ext>.")] = None,
    label: Annotated[list[str] | None, typer.Option(
        "--label", "-l", metavar="L", help="Only this label's segments (repeatable). Default: all.")] = None,
    exact: Annotated[bool, typer.Option(
        "--exact", help="Re-encode: each clip holds exactly its segment's frames (the default).")] = False,
    copy: Annotated[bool, typer.Option(
        "--copy", help="Copy packets from the keyframe at or before each start: fast, lossless, "
                       "starts early (says how early).")] = False,
    pad: Annotated[float, typer.Option(
        "--pad", metavar="S", min=0.0, help="Seconds added at each side (within the video).")] = 0.0,
    supercut_file: Annotated[Path | None, typer.Option(
        "--supercut", metavar="FILE", help="Also write every chosen segment into FILE, in time order.")]
    = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Cut a run's segments out of their videos: a clip per segment, or a supercut."""

    def job() -> int:
        from pipeline.clips import ClipError, supercut
        from pipeline.clips.plan import plan_clips
        from pipeline.report.readback import load_result

        if exact and copy:
            raise PipelineError("--exact and --copy: choose one")
        if output is None and supercut_file is None:
            raise PipelineError("give -o DIR for a clip per segment, --supercut FILE, or both")
        mode = "copy" if copy else "exact"
        folders = _input_folders(run_dir)
        if not folders:
            raise PipelineError(f"{run_dir}: no segments.csv found; is it a `scenetag run` output folder?")
        failed, written, parts = 0, 0, []
        for folder in folders:
            result = load_result(folder)
            segs = [_exclusive(s) for s in result.segments]
            duration = result.info.duration_s if result.info else None
            planned = plan_clips(result.input_path, segs, labels=label or (), pad_s=pad,
                                 duration_s=duration, mode=mode)
            if not planned:
                continue
            if not Path(result.input_path).is_file():
                error(f"{folder.name}: source {result.input_path} is not there (moved or deleted)")
                failed += 1
                continue
            parts += [c.part for c in planned]
            if output is None:
                continue
            try:
                written += _cut(planned, output / folder.name, mode, quiet)
            except ClipError as ex:
                error(f"{folder.name}: {ex}")
                failed += 1
        if not parts and not failed:
            wanted = f" of {', '.join(label)}" if label else ""
            raise PipelineError(f"{run_dir}: no segments{wanted} to cut")
        if supercut_file is not None and parts:
            done = supercut(parts, supercut_file, mode=mode)
            if not quiet:
                typer.echo(f"scenetag: supercut of {plural(done.parts, 'part')} "
                           f"({done.duration_s:.3f} s) written to {supercut_file}", err=True)
        if not quiet and output is not None:
            typer.echo(f"scenetag: {plural(written, 'clip')} written in {output}/", err=True)
        return EXIT_INPUT_FAILED if failed else EXIT_OK

    raise typer.Exit(guarded(job, quiet=quiet, debug=debug))


def _exclusive(seg):
    """A read-back segment with its end frame exclusive, as the cutter takes it."""
    import dataclasses

    end = None if seg.end_frame is None else seg.end_frame + 1
    return dataclasses.replace(seg, end_frame=end)


def _cut(planned, folder: Path, mode: str, quiet: bool) -> int:
    from pipeline.clips import cut_clip

    folder.mkdir(parents=True, exist_ok=True)
    for clip in planned:
        p = clip.part
        done = cut_clip(p.source, p.start_s, p.end_s, folder / clip.name, mode=mode,
                        start_frame=p.start_frame, end_frame=p.end_frame)
        if mode == "copy" and not quiet:
            typer.echo(f"{folder.name}/{clip.name}: starts {done.early_s:.3f} s early "
                       f"(the keyframe before)", err=True)
    return len(planned)
