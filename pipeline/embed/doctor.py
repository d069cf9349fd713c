"""``scenetag doctor``'s core: this machine's runtime × precision table and what ``auto`` picks.

:func:`doctor` loads a model on the CPU and runs ``runtime: auto``'s choice
(:mod:`pipeline.embed.auto`) for it: the cached decision where there is one
(nothing is measured again), else a measurement within the usual budget;
``prepare`` lifts the budget, so what earlier loads deferred (OpenVINO's
accuracy-controlled int8 of a ViT-B/32: minutes) is made and measured now, and
later runs pick from everything. ``fresh`` measures again regardless.

It returns plain JSON data (:func:`doctor`); :func:`table` renders it for a
terminal: per runtime and precision the img/s, the ratio to torch fp32, the min
cosine to torch fp32 on the check images, whether that agrees, and what happened
to it (measured, skipped, deferred, failed, and why); which row ``auto`` picks
and why; this CPU's signature (model name, ISA flags, cores) and the runtimes'
versions the decision is cached under.
"""

from __future__ import annotations

import math
from typing import Any

from pipeline.embed import auto, cpu

DEFAULT_MODEL = "openai/clip-vit-base-patch32"


def doctor(model_id: str = DEFAULT_MODEL, *, revision: str | None = None, prepare: bool = False,
           fresh: bool = False) -> dict[str, Any]:
    """This machine's table for ``model_id`` (a Hub id or a local folder), as JSON-ready data.

    Raises:
        ModelLoadError: the model cannot be loaded (one line, as a run says it).
    """
    from pipeline.embed import load_embedder
    from pipeline.embed.builder import ExportBuilder
    from pipeline.embed.runtime import exportable

    embedder = load_embedder(model_id, revision=revision, device="cpu", precision="fp32", runtime="torch")
    builder = ExportBuilder(embedder) if exportable(embedder.preprocess_spec) else None
    record = auto.choose(embedder, builder, budget=math.inf if prepare else None, fresh=fresh)
    rows = []
    for runtime, precision in auto.ORDER:
        row = record.get("rows", {}).get(auto.label(runtime, precision))
        if row is not None:
            rows.append({"runtime": runtime, "precision": precision, **row})
    base = next((r.get("img_s") for r in rows if (r["runtime"], r["precision"]) == ("torch", "fp32")), None)
    for row in rows:
        if base and row.get("img_s"):
            row["x_torch_fp32"] = round(row["img_s"] / base, 2)
        row["picked"] = auto.label(row["runtime"], row["precision"]) == record.get("chosen")
    return {"model": model_id, "revision": embedder.revision, "cpu": cpu.signature(),
            "flags": sorted(cpu.flags()), "versions": cpu.versions(), "picked": record.get("chosen"),
            "reason": record.get("reason"), "decided": record.get("decided"),
            "complete": record.get("complete"),
            "measured_at": record.get("date"), "agreement": auto.AGREEMENT,
            "decision": str(auto.decision_path(record["key"])) if record.get("key") else None,
            "budget_s": None if prepare else auto.budget_s(), "rows": rows}


def table(report: dict[str, Any]) -> str:
    """``report`` (from :func:`doctor`) as lines for a terminal."""
    sig, versions = report["cpu"], report["versions"]
    installed = ", ".join(f"{name} {v}" for name, v in versions.items() if v) or "none"
    state = "complete" if report["complete"] else "partial: the next load goes on"
    lines = [f"model {report['model']} (revision {report['revision']})",
             f"CPU   {sig['cpu']}, {sig['cores']} cores, {sig['machine']}; "
             f"ISA {' '.join(sig['isa']) or 'none of ' + ', '.join(cpu.ISA_FLAGS)}",
             f"with  {installed}",
             f"auto  {report['decided']} decision ({state}, {report['measured_at'] or 'not measured'})"
             + ("" if not report["decision"] else f": {report['decision']}"),
             ""]
    header = ("runtime", "precision", "img/s", "x fp32", "min cosine", "agrees", "")
    cells = [header]
    for row in report["rows"]:
        status = row.get("status", "")
        note = "reference" if row.get("reference") else status
        if row.get("reason") and status != "measured":
            note += f": {row['reason']}"
        elif row.get("gate"):
            note += f" (tried: {row['gate']})"
        if row.get("earlier"):
            note += ", agreement from an earlier load"
        cosine = row.get("min_cosine")
        cells.append((row["runtime"], row["precision"], f"{row['img_s']:.1f}" if row.get("img_s") else "-",
                      f"{row['x_torch_fp32']:.2f}" if row.get("x_torch_fp32") else "-",
                      f"{cosine:.7f}" if isinstance(cosine, float) else "-",
                      {True: "yes", False: "NO"}.get(row.get("agrees"), "-"),
                      ("<- auto  " if row["picked"] else "") + note))
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(header) - 1)]
    for c in cells:
        lines.append("  ".join(str(v).ljust(w) if i < 2 else str(v).rjust(w)
                               for i, (v, w) in enumerate(zip(c, widths))) + "  " + c[-1])
    lines += ["", f"auto picks {report['picked']}: {report['reason']}",
              f"(agreement: min cosine to torch fp32 >= {report['agreement']} on the sample photos, their "
              "mirrors, flat and drawn scenes; img/s: the best timed pass over those images)"]
    return "\n".join(lines)
