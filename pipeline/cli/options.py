"""How the CLI's parameters are declared and shown in ``--help``.

:class:`Command` is every command's class: it shows an argument as its
metavar (``INPUT...``) and a must-be-above-0 number as ``[x>0]`` (typer's
``min`` is inclusive, so it cannot say that). Below it, the Annotated option
types several commands share, so one flag reads the same everywhere.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption

from pipeline.config import DEFAULT_MODEL


class _Argument(TyperArgument):
    """An argument shown as its metavar (``INPUT...``), without typer's
    ``{inputs}...`` usage braces and ``<list[str]>`` type label."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        return name if self.required else f"[{name}]"


class _AboveZero(TyperOption):
    """A number option that must be above 0, and whose help says so
    (``[x>0]``): typer's ``min`` is inclusive, so ``min=0`` would promise
    that 0 works. Checked by :func:`above_zero`."""

    def _get_number_range_help_str(self) -> str | None:
        return "x>0" if self.max is None else f"0<x<={self.max:g}"


def above_zero(value: float | None) -> float | None:
    """The callback of an option that must be above 0 (see :class:`_AboveZero`)."""
    if value is not None and not value > 0:  # NaN too
        raise typer.BadParameter(f"must be greater than 0; got {value:g}")
    return value


class Command(TyperCommand):
    """Every command's class: its metavar arguments and its :func:`above_zero`
    options swap to the classes above, which change only their help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument and param.metavar:
                param.__class__ = _Argument
            elif type(param) is TyperOption and param.callback is not None \
                    and inspect.unwrap(param.callback) is above_zero:
                param.__class__ = _AboveZero


# What `run --formats` (and `config show --formats`) accept.
FORMATS = ("csv", "plot", "json", "html", "vtt", "edl", "thumbs", "otio", "fcpxml", "chapters",
           "edl-events")

# Options shared by several commands.
ConfigOpt = Annotated[str | None, typer.Option(
    "--config", "-c", metavar="FILE|NAME",
    help="YAML config file, or the name of a shipped one (demo, coffee, nsfw, default: "
         "configs/NAME.yaml). Default: the packaged default.yaml: 7 scene labels.")]
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", metavar="ID|DIR",
                                              help="Hub id or local model folder. "
                                                   f"Default: the config's; {DEFAULT_MODEL}.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only print errors.")]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Verbose logs and full tracebacks.")]
DeviceOpt = Annotated[str | None, typer.Option("--device", metavar="DEV",
                                               help="auto, cpu, cuda, cuda:N or mps. "
                                                    "Default: the config's; auto.")]
RuntimeOpt = Annotated[Literal["auto", "torch", "openvino", "onnxruntime"] | None, typer.Option(
    help="What runs the model: torch, or a graph exported for OpenVINO / ONNX Runtime (CPU; fp32, "
         "int8, OpenVINO also bf16; needs scenetag[cpu]). Default: the config's; auto (on a CPU: the "
         "fastest runtime x precision that agrees with torch fp32, measured once on this machine: see "
         "`scenetag doctor`; SCENETAG_CPU_RUNTIME=torch makes it torch).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the run summary as JSON on stdout "
                                                      "(nothing else goes to stdout).")]
LabelsOpt = Annotated[str | None, typer.Option(
    metavar="A,B,...", help="Comma-separated labels, replacing the config's.")]
ModeOpt = Annotated[Literal["auto", "softmax", "binary", "sigmoid", "independent"] | None, typer.Option(
    help="auto: the model's own rule (CLIP softmax, SigLIP sigmoid); softmax: labels exclude each "
         "other; binary: each label is its own yes/no; sigmoid: SigLIP's independent probabilities; "
         "independent: sigmoid for SigLIP, else binary. Default: the config's; auto "
         "(--labels without --config: independent).")]
EverySecondsOpt = Annotated[float | None, typer.Option(
    metavar="S", callback=above_zero, help="Sample one frame every S seconds. Default: the config's; 1.0.")]
EveryNOpt = Annotated[int | None, typer.Option(metavar="N", min=1, help="Sample every N-th frame.")]
FpsOpt = Annotated[float | None, typer.Option(metavar="FPS", callback=above_zero,
                                              help="Sample this many frames per second.")]
FormatsOpt = Annotated[str | None, typer.Option(
    metavar="F,F,...", help=f"Comma-separated, of: {','.join(FORMATS)}. "
                            "Default: the config's; all but thumbs.")]
NoRefineOpt = Annotated[bool, typer.Option(
    "--no-refine", help="Keep segment edges at sample resolution (no frame-accurate edge refinement).")]

# Options of the commands that read an embedding store.
StoreOpt = Annotated[Path, typer.Option("--store", metavar="DIR",
                                         help="Embedding store folder (from `scenetag run`).",
                                         file_okay=False)]
StoreModelOpt = Annotated[str | None, typer.Option(
    "--model", "-m", metavar="ID|DIR", help="Model for queries. "
                                            "Default: the one the store was built with.")]
