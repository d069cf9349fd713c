"""``runtime: auto`` on a CPU: runtime and precision chosen together, by measurement here.

Which runtime × precision is fastest follows the CPU, not a preference: on the
2-core Zen 5 with AVX-512 bf16 and VNNI OpenVINO's accuracy-controlled int8 won;
on a 2-core AVX2 Zen 3 ONNX Runtime's dynamic int8 ran 31.0 img/s against 16.9
for torch fp32 and 18.8 for OpenVINO int8, which took 5 minutes to make
(docs/PERFORMANCE.md). So the first load of a model on a machine tries the
candidates of :data:`ORDER`, in the order of what they cost to prepare, and the
fastest whose image and text embeddings agree with torch fp32 at min cosine >=
:data:`~pipeline.embed.choose.AGREEMENT` on the check images wins:

1. torch fp32 (the reference: nothing to prepare); torch bf16 where the CPU has
   native bf16 (emulated, it ran 7× slower than fp32 on the Zen 3);
2. ONNX Runtime fp32 (one export: seconds) and its dynamic int8 (seconds more, in
   the format this CPU's kernels do not saturate in: ``OnnxRuntime.int8_format``);
3. OpenVINO fp32, and bf16 where the CPU has native bf16;
4. OpenVINO int8 with accuracy control (minutes for a ViT-B/32), only where a
   cheap probe says it can win (:func:`int8_gate`): an ISA with VNNI, AMX or
   AVX-512 bf16, or a quick uncontrolled quantisation timed at >=
   :data:`INT8_PROBE_GAIN` × the best agreeing candidate so far.

**Budget.** A load spends at most :func:`budget_s` seconds (``$SCENETAG_AUTO_BUDGET_S``,
default :data:`DEFAULT_BUDGET_S`) on this, so a first run on 2 cores finishes within
a minute of a run with a warm cache. Each candidate's cost is estimated first
(:func:`estimate_s`: fitted constants, scaled by how slow this machine's stages
turn out); one that does not fit what is left is deferred to a later run (the
decision is cached as partial, and the next load goes on from the exports
already cached), one that fits no run's budget (the accuracy-controlled int8 of
a ViT-B/32) waits for an explicit preparation (``scenetag doctor --prepare``, or
``SCENETAG_AUTO_BUDGET_S=inf``). Both are said on stderr, as is each stage
started (with the seconds elapsed) and, at the end, what was chosen, why, and
how much was cached.

**Timing.** Every candidate is timed through the same embedder on the same check
images, after a warm-up pass that also gives its agreement; the agreeing ones
are then timed again in interleaved rounds and keep their best pass, so a burst
of load on a shared machine does not fall on one candidate alone.

**Cache.** The decision is a JSON record in ``exports/decisions/auto-<hash>.json``
(:func:`decision_key`: model id and revision, input size, the asked precision,
the CPU's signature (model name, ISA flags, cores: :mod:`pipeline.embed.cpu`),
the runtimes' versions, :data:`DECISION_VERSION`); a later load reads it and
measures nothing. :func:`summary` is what ``Embedder.auto_choice`` (and so
``summary.json``) carries of it. A cache that cannot be written leaves ``auto``
on torch, with one warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_write_text
from pipeline.embed import cpu
from pipeline.embed import runtime as runtime_mod
from pipeline.embed.choose import AGREEMENT
from pipeline.embed.runtime import EXPORT_VERSION, TorchRuntime, cache_root, decision_path, decisions_folder
from pipeline.types import ModelLoadError

log = logging.getLogger(__name__)

# (runtime, precision) in the order of what each costs to get ready.
ORDER = (("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32"), ("onnxruntime", "int8"),
         ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"))
# What a candidate is made from, when that is cached (an int8 entry from its runtime's fp32
# entry; OpenVINO bf16 is a compile of the fp32 graph).
PREREQUISITE = {("onnxruntime", "int8"): ("onnxruntime", "fp32"), ("openvino", "bf16"): ("openvino", "fp32"),
                ("openvino", "int8"): ("openvino", "fp32")}
NEEDS = {"onnxruntime": ("onnxruntime", "onnx", "onnxscript"), "openvino": ("openvino",)}

BUDGET_ENV = "SCENETAG_AUTO_BUDGET_S"
DEFAULT_BUDGET_S = 45.0  # + loading the winner and a stage's misestimate: within the 60 s of issue 29
DECISION_VERSION = 1
TIMED_ROUNDS = 3  # timed passes of each agreeing candidate (the first right after its check)
INT8_PROBE_GAIN = 1.2
KEEP_WITHIN = 0.5  # a candidate under half the best agreeing speed is let go (its memory) untimed
# Seconds to make a candidate ready from what it is made of, as (fixed, per million
# parameters), fitted on 2 cores of the AMD EPYC (avx512_bf16) at load ~1, 2026-12-08:
# the bench's ViT-B/32 (126 M parameters: ONNX export 18 s, its int8 3 s, OpenVINO
# export 7-10 s, accuracy-controlled int8 165 s) and the tiny test CLIP (exports
# 5-6 s: the exporters' fixed cost). Scaled at run time by how much slower this
# machine's stages turn out (_Decision.scale).
PREPARE_S = {("torch", "bf16"): (0.5, 0.015), ("onnxruntime", "fp32"): (5.5, 0.1),
             ("onnxruntime", "int8"): (0.5, 0.02), ("openvino", "fp32"): (5.0, 0.03),
             ("openvino", "bf16"): (0.5, 0.01), ("openvino", "int8"): (20.0, 1.3)}
# The quick uncontrolled OpenVINO int8 (trial.PROBE_SAMPLES samples): 39 s for the
# ViT-B/32 at load ~10 (2026-12-08); not measured idle (this machine has VNNI: no probe).
PROBE_S = (5.0, 0.12)
LOAD_S = (0.5, 0.01)  # loading a cached entry
HEARTBEAT_S = 30.0  # a stage expected to take a minute or more says it is still going this often

_warned: set[str] = set()  # one warning per cause and process (a run loads per worker)


def label(runtime: str, precision: str) -> str:
    """``onnxruntime-int8``: a candidate's name in records and tables."""
    return f"{runtime}-{precision}"


def budget_s() -> float:
    """Seconds a load may spend preparing and measuring: ``$SCENETAG_AUTO_BUDGET_S``
    (``inf`` for no limit), default :data:`DEFAULT_BUDGET_S`."""
    raw = os.environ.get(BUDGET_ENV, "").strip().lower()
    if not raw:
        return DEFAULT_BUDGET_S
    if raw in ("inf", "none", "unlimited"):
        return math.inf
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0 or math.isnan(value):
        log.warning("%s=%s is not a number of seconds (or inf): using %g", BUDGET_ENV, raw, DEFAULT_BUDGET_S)
        return DEFAULT_BUDGET_S
    return value


def offered(precision: str, *, exportable: bool = True,
            have: Callable[[str], bool] | None = None) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """The candidates this CPU and installation offer for ``precision`` (``auto``: all;
    torch fp32 always comes first, the reference), and why each other one is skipped.
    ``have``: whether a package is installed (default :func:`~pipeline.embed.runtime.importable`)."""
    have = have or runtime_mod.importable
    out: list[tuple[str, str]] = []
    skipped: dict[str, str] = {}
    for runtime, prec in ORDER:
        name = label(runtime, prec)
        if precision not in ("auto", prec) and (runtime, prec) != ("torch", "fp32"):
            continue
        if prec == "bf16" and not cpu.has_native_bf16():
            skipped[name] = ("no native bf16 on this CPU (emulated, torch bf16 ran 7x slower than fp32 "
                             "on an AVX2 Zen 3)")
            continue
        if runtime != "torch":
            if not exportable:
                skipped[name] = "the model takes a variable patch count per image, which no export can"
                continue
            needs = NEEDS[runtime] + (("nncf",) if name == "openvino-int8" else ())
            missing = [n for n in needs if not have(n)]
            if missing:
                skipped[name] = f"{' and '.join(missing)} not installed (pip install 'scenetag[cpu]')"
                continue
        out.append((runtime, prec))
    return out, skipped


def estimate_s(runtime: str, precision: str, params_m: float, *, cached: Callable[[str, str], bool],
               pass_s: float) -> float:
    """Seconds to make (``runtime``, ``precision``) ready and measure it, before any scaling:
    what is missing of what it is made of, its own preparation (or a load, when
    cached), and two passes at ``pass_s`` (the warm-up that checks agreement, the first
    timed one; the other timed rounds are reserved apart)."""
    def stage(cost: tuple[float, float]) -> float:
        return cost[0] + cost[1] * params_m

    total = 2 * pass_s
    if runtime == "torch":
        return total + (stage(PREPARE_S[(runtime, precision)]) if precision != "fp32" else 0.0)
    before = PREREQUISITE.get((runtime, precision))
    if before is not None and not cached(*before) and before in PREPARE_S:
        total += stage(PREPARE_S[before])
    return total + (stage(LOAD_S) if cached(runtime, precision) else stage(PREPARE_S[(runtime, precision)]))


def int8_gate() -> str | None:
    """Why OpenVINO's accuracy-controlled int8 can win on this CPU without a probe (its
    int8 or bf16 instructions), or None: a quick uncontrolled int8 must show it first."""
    have = [f for f in cpu.INT8_DOT + cpu.NATIVE_BF16 if f in cpu.flags()]
    return f"the CPU has {', '.join(have)}" if have else None


# --------------------------------------------------------------------------- deciding


def decide(trial: Any, candidates: list[tuple[str, str]], skipped: dict[str, str], *, budget: float,
           precision: str = "auto", previous: dict[str, dict] | None = None,
           clock: Callable[[], float] = time.perf_counter) -> tuple[dict, Any]:
    """Try ``candidates`` (torch fp32 first) within ``budget`` seconds; the fastest agreeing
    one of ``precision`` wins (of any, for ``auto``).

    ``trial`` does the work (:class:`pipeline.embed.trial.Trial`; the tests give fake
    timings): ``reference()``, ``cached(r, p)``, ``prepare(r, p)``, ``check(ready)``,
    ``time_pass(ready)``, ``probe_int8(fp32_ready)``, ``images``, ``params_m``.
    ``previous``: the rows of a partial decision an earlier load left; what it settled
    (agreement, failures, a probe's verdict) is kept, what it deferred is tried first,
    and its agreeing candidates are timed again where the budget allows.

    Returns:
        (the record's ``rows``, ``chosen``, ``complete``, ``reason``, ``elapsed_s`` and
        ``cached_bytes``; the chosen candidate, ready to apply).
    """
    return _Decision(trial, candidates, skipped, budget, precision, previous or {}, clock).run()


class _Decision:
    """One :func:`decide`: the rows so far, the candidates kept ready, their best passes."""

    def __init__(self, trial: Any, candidates: list[tuple[str, str]], skipped: dict[str, str], budget: float,
                 precision: str, previous: dict[str, dict], clock: Callable[[], float]) -> None:
        self.trial, self.candidates, self.budget, self.precision, self.clock = \
            trial, candidates, budget, precision, clock
        self.started = clock()
        self.count = len(trial.images)
        self.rows: dict[str, dict] = {n: {"status": "skipped", "reason": why} for n, why in skipped.items()}
        self.ready: dict[str, Any] = {}
        self.best: dict[str, float] = {}  # seconds of each candidate's best timed pass
        self.gates: dict[str, dict] = {}  # why the accuracy-controlled int8 was tried, kept beside its row
        self.spent = {"estimated": 0.0, "actual": 0.0}
        self.choosable = {label(r, p) for r, p in candidates if precision in ("auto", p)}
        # What an earlier load settled: agreement does not change with the load on the machine.
        # A measured candidate whose export is gone since is new work again (within the budget).
        self.settled = {n: r for n, r in previous.items() if n != label("torch", "fp32") and (
            r.get("status") == "failed" or (r.get("status") == "skipped" and "probe" in r)
            or (r.get("status") == "measured" and "-" in n and trial.cached(*n.split("-", 1))))}
        self.ref_s = 0.0

    def elapsed(self) -> float:
        return self.clock() - self.started

    def scale(self) -> float:
        """How much slower than the fitted constants this machine's stages ran so far (>= 1)."""
        spent = self.spent
        return max(1.0, spent["actual"] / spent["estimated"]) if spent["estimated"] > 0 else 1.0

    def reserve(self) -> float:
        """The remaining timed rounds of the candidates kept so far."""
        return (TIMED_ROUNDS - 1) * sum(self.best[n] for n in self.ready)

    def leader(self, *, earlier: bool = False) -> tuple[str, float]:
        """The fastest agreeing candidate so far and its img/s (``earlier``: counting what an
        earlier load measured and this one has not timed yet)."""
        speeds = {n: self.count / s for n, s in self.best.items() if self.rows[n].get("agrees")}
        if earlier:
            speeds.update({n: r["img_s"] for n, r in self.settled.items()
                           if r.get("agrees") and r.get("img_s") and n not in speeds})
        name = max(speeds, key=speeds.get)
        return name, speeds[name]

    def run(self) -> tuple[dict, Any]:
        trial, rows = self.trial, self.rows
        fp32 = label("torch", "fp32")
        self.ref_s = max(trial.reference(), 1e-6)
        rows[fp32] = {"status": "measured", "reference": True, "min_cosine_images": 1.0,
                      "min_cosine_texts": 1.0, "min_cosine": 1.0, "agrees": True, "prepare_s": 0.0}
        self.ready[fp32], self.best[fp32] = trial.prepare("torch", "fp32"), self.ref_s
        for runtime, prec in self.candidates:  # new work first: an earlier load's leftovers
            if label(runtime, prec) != fp32 and label(runtime, prec) not in self.settled:
                self.attempt(runtime, prec)
        for runtime, prec in self.candidates:  # then what an earlier load measured, timed here again
            if label(runtime, prec) in self.settled:
                self.retime(runtime, prec)
        if not self.choosable & {n for n, r in rows.items() if r.get("status") == "measured"}:
            # an explicit precision none of whose candidates fitted: the user asked for it
            for runtime, prec in self.candidates:
                if label(runtime, prec) in self.choosable and rows.get(label(runtime, prec), {}).get(
                        "status") == "deferred":
                    self.attempt(runtime, prec, force=True)
                    break
        for _ in range(TIMED_ROUNDS - 1):  # interleaved: a burst of load is shared, not one row's
            for name in list(self.ready):
                self.best[name] = min(self.best[name], trial.time_pass(self.ready[name]))
        return self.finish()

    def fits(self, name: str, estimate: float, what: str, force: bool) -> bool:
        """Whether ``estimate`` seconds fit the budget; else ``name``'s row says until when it waits."""
        if force:
            return True
        if estimate > self.budget:
            self.rows[name] = {"status": "deferred", "until": "explicit", "estimate_s": round(estimate, 1),
                               "reason": f"{what} takes about {_duration(estimate)}, more than a load's "
                                         f"budget ({self.budget:g} s): `scenetag doctor --prepare` or "
                                         f"{BUDGET_ENV}=inf makes it"}
            return False
        if self.elapsed() + estimate + self.reserve() > self.budget:
            self.rows[name] = {"status": "deferred", "until": "later run", "estimate_s": round(estimate, 1),
                               "reason": f"{what} (about {_duration(estimate)}) did not fit what was left of "
                                         f"this load's {self.budget:g} s: the next load goes on"}
            return False
        return True

    def attempt(self, runtime: str, prec: str, *, force: bool = False) -> None:
        """Prepare, check and time one candidate, if it fits."""
        trial, name = self.trial, label(runtime, prec)
        if name == label("openvino", "int8") and not self.gated(force):
            return
        cached = trial.cached(runtime, prec)
        raw = estimate_s(runtime, prec, trial.params_m, cached=trial.cached, pass_s=self.ref_s)
        estimate = raw * self.scale()
        verb = "preparing" if runtime == "torch" else "loading" if cached else \
            "quantising (accuracy-controlled)" if name == "openvino-int8" else "exporting"
        if not self.fits(name, estimate, f"{verb} it", force):
            return
        if estimate >= 5:
            log.warning("runtime auto [%.0f s]: %s %s (about %s)", self.elapsed(), verb, name,
                        _duration(estimate))
        began = self.clock()
        try:
            with _heartbeat(f"{verb} {name}", self.elapsed, estimate >= 2 * HEARTBEAT_S):
                candidate = trial.prepare(runtime, prec)
            cosines = trial.check(candidate)
            first = trial.time_pass(candidate)
        except Exception as ex:  # noqa: BLE001 - one runtime's failure must not stop auto
            why = str(ex).splitlines()[0] if str(ex) else type(ex).__name__
            self.rows[name] = {"status": "failed", "reason": why}
            log.warning("runtime auto: %s failed (%s): left out", name, why)
            return
        took = self.clock() - began
        self.spent["estimated"] += raw
        self.spent["actual"] += took
        agrees = cosines["min_cosine"] >= AGREEMENT
        self.rows[name] = {"status": "measured", **cosines, "agrees": agrees, "prepare_s": round(took, 1),
                           "exported": not cached, "estimate_s": round(estimate, 1)}
        if not cached and hasattr(trial, "entry_bytes"):
            self.rows[name]["bytes"] = trial.entry_bytes(runtime, prec)
        self.best[name] = first
        log.info("runtime auto [%.0f s]: %s %.1f img/s, min cosine %.7f (%s)", self.elapsed(), name,
                 self.count / first, cosines["min_cosine"], "agrees" if agrees else f"under {AGREEMENT}")
        self.keep(name, candidate)

    def keep(self, name: str, candidate: Any) -> None:
        """Keep an agreeing candidate for the timed rounds unless it cannot win (its memory goes)."""
        if self.rows[name]["agrees"] and self.count / self.best[name] >= KEEP_WITHIN * self.leader()[1]:
            self.ready[name] = candidate

    def retime(self, runtime: str, prec: str) -> None:
        """An earlier load's row, kept; an agreeing one is loaded and timed again where it fits."""
        name = label(runtime, prec)
        row = self.rows[name] = {**self.settled[name], "exported": False, "earlier": True}
        if row.get("status") != "measured" or not row.get("agrees") or not self.trial.cached(runtime, prec):
            return
        estimate = estimate_s(runtime, prec, self.trial.params_m, cached=self.trial.cached,
                              pass_s=self.ref_s) * self.scale()
        if self.elapsed() + estimate + self.reserve() > self.budget:
            row["timed"] = "in an earlier load"  # its img/s is that load's, not comparable to this one's
            return
        try:
            candidate = self.trial.prepare(runtime, prec)
            self.trial.time_pass(candidate)  # the warm-up of the timed shape
            self.best[name] = self.trial.time_pass(candidate)
        except Exception as ex:  # noqa: BLE001 - as in attempt
            self.rows[name] = {"status": "failed", "reason": str(ex).splitlines()[0] if str(ex) else repr(ex)}
            return
        self.keep(name, candidate)

    def gated(self, force: bool) -> bool:
        """Whether the accuracy-controlled int8 is worth making (else its row says why not)."""
        trial, name = self.trial, label("openvino", "int8")
        why = int8_gate()
        if force or why is not None or trial.cached("openvino", "int8"):
            self.gates[name] = {"gate": why or ("cached" if not force else "asked for")}
            return True
        ov32 = label("openvino", "fp32")
        state = self.rows.get(ov32) or self.settled.get(ov32) or {"status": "skipped"}
        if state.get("status") != "measured":
            self.rows[name] = {**{k: v for k, v in state.items() if k in ("status", "until", "estimate_s")},
                               "reason": f"its probe needs {ov32}, which is {state['status']}"}
            return False
        estimate = (PROBE_S[0] + PROBE_S[1] * trial.params_m + 3 * self.ref_s) * self.scale()
        if not self.fits(name, estimate, "a quick int8 probe", force):
            return False
        log.warning("runtime auto [%.0f s]: probing OpenVINO int8 (a quick uncontrolled quantisation, "
                    "about %s)", self.elapsed(), _duration(estimate))
        try:
            probe = trial.probe_int8(self.ready.get(ov32) or trial.prepare("openvino", "fp32"))
            cosine = trial.check(probe)["min_cosine"]
            seconds = min(trial.time_pass(probe) for _ in range(2))
        except Exception as ex:  # noqa: BLE001 - as a failed candidate
            self.rows[name] = {"status": "failed", "reason": f"its probe failed ({str(ex).splitlines()[0]})"}
            return False
        leader, leader_img_s = self.leader(earlier=True)
        gain = self.count / seconds / leader_img_s
        probe = {"img_s": round(self.count / seconds, 2), "min_cosine": round(cosine, 7), "vs": leader,
                 "gain": round(gain, 3)}
        if gain >= INT8_PROBE_GAIN:
            self.gates[name] = {"gate": f"a quick int8 ran {gain:.2f}x {leader}", "probe": probe}
            return True
        self.rows[name] = {"status": "skipped", "probe": probe,
                           "reason": f"a quick uncontrolled int8 ran {probe['img_s']:g} img/s, {gain:.2f}x "
                                     f"{leader} (under {INT8_PROBE_GAIN}x): the accuracy-controlled one "
                                     "(minutes) cannot win"}
        return False

    def finish(self) -> tuple[dict, Any]:
        rows, count = self.rows, self.count
        for name, seconds in self.best.items():
            rows[name]["img_s"] = round(count / seconds, 2)
            rows[name].pop("timed", None)
        for name, gate in self.gates.items():
            rows[name] = {**rows.get(name, {}), **gate}
        measured = [n for n in self.choosable if rows.get(n, {}).get("status") == "measured"]
        if not measured:
            why = "; ".join(f"{n}: {rows[n].get('reason')}" for n in sorted(self.choosable) if n in rows)
            raise ModelLoadError(f"precision {self.precision} could not be prepared on any runtime "
                                 f"here: {why}")
        agreeing = [n for n in measured if rows[n]["agrees"]]
        chosen = max(agreeing or measured, key=lambda n: rows[n]["img_s"])
        if not agreeing:
            log.warning("runtime auto: no %s candidate agrees with torch fp32 (>= %s): running %s as asked "
                        "(min cosine %.5f)", self.precision, AGREEMENT, chosen, rows[chosen]["min_cosine"])
        picked = self.ready.get(chosen) or self.trial.prepare(*chosen.split("-", 1))
        self.ready.clear()  # the others' graphs and sessions go now, not when the record does
        complete = not any(r.get("until") == "later run" for r in rows.values())
        result = {"rows": {n: rows[n] for n in _ordered(rows)}, "chosen": chosen, "complete": complete,
                  "reason": _reason(rows, chosen, agreeing, self.precision),
                  "elapsed_s": round(self.elapsed(), 1),
                  "cached_bytes": sum(r.get("bytes", 0) for r in rows.values() if r.get("exported"))}
        return result, picked


@contextlib.contextmanager
def _heartbeat(what: str, elapsed: Callable[[], float], on: bool) -> Iterator[None]:
    """While the block runs, say every :data:`HEARTBEAT_S` that ``what`` is still going
    (NNCF's accuracy control is one call of minutes, and its own bars are silenced)."""
    if not on:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            log.warning("runtime auto [%.0f s]: still %s", elapsed(), what)

    thread = threading.Thread(target=beat, name="scenetag-auto-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _ordered(rows: dict[str, dict]) -> list[str]:
    order = [label(r, p) for r, p in ORDER]
    return sorted(rows, key=lambda n: order.index(n) if n in order else len(order))


def _reason(rows: dict[str, dict], chosen: str, agreeing: list[str], precision: str) -> str:
    """Why ``chosen``, in one line: its speed against torch fp32 and the runner-up, what was
    refused, and what was not measured."""
    row, fp32 = rows[chosen], rows[label("torch", "fp32")]
    text = f"{chosen}: {row['img_s']:g} img/s"
    if chosen != label("torch", "fp32") and fp32.get("img_s"):
        text += f" = {row['img_s'] / fp32['img_s']:.2f}x torch fp32"
    others = sorted((n for n in agreeing if n != chosen), key=lambda n: -rows[n]["img_s"])
    text += (f", the fastest of {len(agreeing)} agreeing with torch fp32 (min cosine >= {AGREEMENT}; "
             f"{chosen} {row['min_cosine']:.5f})" if chosen in agreeing else
             f", none of the {precision} candidates agreeing with torch fp32 (>= {AGREEMENT})")
    if others:
        text += f"; next {others[0]} {rows[others[0]]['img_s']:g} img/s"
    refused = [n for n, r in rows.items() if r.get("status") == "measured" and not r.get("agrees")]
    if refused:
        text += "; refused (disagree): " + ", ".join(f"{n} {rows[n]['min_cosine']:.4f}" for n in refused)
    waiting = [f"{n} ({r['until']})" for n, r in rows.items() if r.get("status") == "deferred"]
    if waiting:
        text += "; not measured yet: " + ", ".join(waiting)
    return text


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


# --------------------------------------------------------------------------- the cached decision


def decision_key(embedder: Any, precision: str) -> tuple[str, dict]:
    """The decision's file name and what it hashes: model id and revision, input size,
    the asked precision, the agreement rule, this CPU's signature, the runtimes' versions."""
    parts = {"version": DECISION_VERSION, "export_version": EXPORT_VERSION, "model": embedder.model_id,
             "revision": embedder.revision, "input_size": embedder.input_size, "precision": precision,
             "agreement": AGREEMENT, "cpu": cpu.signature(), "versions": cpu.versions()}
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]
    return f"auto-{digest}", parts


def read_decision(path: Path, key: str) -> dict | None:
    """The cached decision at ``path``, or None (absent; a damaged or foreign one is logged)."""
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict) or record.get("key") != key or \
                not isinstance(record.get("rows"), dict):
            raise ValueError("not a decision made for this model, CPU and installation")
        chosen = record["chosen"]
        if record["rows"].get(chosen, {}).get("status") != "measured" or "-" not in chosen:
            raise ValueError(f"its choice {chosen!r} was not measured")
        return record
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as ex:
        log.warning("cached runtime decision %s is unusable (%s): measuring again", path, ex)
        return None


def unwritable(root: Path) -> str | None:
    """Why nothing can be cached under ``root`` (None: it can)."""
    folder = decisions_folder(root)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".writable-"):
            pass
    except OSError as ex:
        return ex.strerror or str(ex)
    return None


# --------------------------------------------------------------------------- a load's choice


def choose(embedder: Any, builder: Any, *, precision: str = "auto", budget: float | None = None,
           fresh: bool = False, trial_factory: Callable[..., Any] | None = None) -> dict:
    """Leave ``embedder`` (loaded at torch fp32) running the runtime and precision ``auto``
    picks on this machine, from the cached decision or measured now; the decision record.

    Args:
        builder: the embedder's :class:`~pipeline.embed.builder.ExportBuilder`, or None
            where no export can serve (torch's candidates alone).
        precision: ``auto``, or the precision asked for (its candidates alone).
        budget: seconds this load may spend (default :func:`budget_s`); ``math.inf``
            also prepares what earlier loads deferred.
        fresh: measure again even where a decision is cached.
    """
    budget = budget_s() if budget is None else budget
    key, parts = decision_key(embedder, precision)
    path = decision_path(key)
    record = None if fresh else read_decision(path, key)
    if record is not None and _usable(record, builder, budget):
        runtime, prec = record["chosen"].split("-", 1)
        _apply_cached(embedder, builder, runtime, prec)
        record["decided"] = "cached"
        return record
    problem = unwritable(cache_root())
    if problem is not None:
        return _torch_fallback(embedder, precision,
                               f"the export cache {cache_root()} cannot be written ({problem})")
    candidates, skipped = offered(precision, exportable=builder is not None)
    if precision == "int8" and not any(p == "int8" for _, p in candidates):
        raise ModelLoadError("precision int8 runs on an exported runtime (onnxruntime, or openvino with "
                             "nncf), "
                             "none of which can run here: " + "; ".join(
                                 f"{n}: {why}" for n, why in skipped.items() if n.endswith("int8"))
                             + "; use --precision fp32")
    if not any(p == precision for _, p in candidates) and precision != "auto" and precision != "fp32":
        return _torch_fallback(embedder, precision, f"no runtime offers {precision} natively here "
                               f"({'; '.join(skipped.values())}): torch runs it as asked")
    trial = (trial_factory or _trial)(embedder, builder)
    previous = record["rows"] if record is not None else None  # a partial decision goes on
    log.warning("runtime auto: %s of %s on this CPU (%s, %d cores, %s): measuring %s, %s; "
                "cached for later runs", "first use" if previous is None else "going on with the first use",
                embedder.model_id, parts["cpu"]["cpu"], parts["cpu"]["cores"],
                " ".join(parts["cpu"]["isa"]) or "no ISA flags known",
                ", ".join(label(r, p) for r, p in candidates),
                "with no time limit" if math.isinf(budget) else f"at most {budget:g} s")
    result, picked = decide(trial, candidates, skipped, budget=budget, precision=precision, previous=previous)
    trial.apply(picked)
    record = {"version": DECISION_VERSION, "key": key, "key_parts": parts, **result,
              "images": len(trial.images), "photos": getattr(trial, "photos", []), "agreement": AGREEMENT,
              "budget_s": None if math.isinf(budget) else budget, "model": embedder.model_id,
              "revision": embedder.revision, "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
              "decided": "measured"}
    try:
        atomic_write_text(path, json.dumps(record, indent=1))
    except OSError as ex:
        log.warning("runtime auto: the decision cannot be cached (%s: %s): the next load measures again",
                    path, ex.strerror or ex)
    log.warning("runtime auto: done in %.0f s, %.0f MB cached in %s: %s for %s (%s)", record["elapsed_s"],
                record["cached_bytes"] / 1e6, path.parent.parent, record["chosen"], embedder.model_id,
                record["reason"])
    for name, row in record["rows"].items():
        if row.get("status") == "deferred":
            log.warning("runtime auto: %s not measured yet: %s", name, row["reason"])
    return record


def _trial(embedder: Any, builder: Any) -> Any:
    from pipeline.embed.trial import Trial

    return Trial(embedder, builder)


def _usable(record: dict, builder: Any, budget: float) -> bool:
    """Whether a cached decision serves this load: complete (nothing deferred to a later
    run; under an unlimited budget, nothing deferred at all) and its choice still cached."""
    deferred = [r for r in record["rows"].values() if r.get("status") == "deferred"]
    if not record.get("complete") or (math.isinf(budget) and deferred):
        return False
    runtime, prec = record["chosen"].split("-", 1)
    return runtime == "torch" or (builder is not None and builder.cached(runtime, prec))


def _apply_cached(embedder: Any, builder: Any, runtime: str, precision: str) -> None:
    import torch

    if runtime == "torch":
        if precision == "bf16":  # the fp32 model is no one's reference now: converted in place
            embedder.model = embedder.model.to(torch.bfloat16)
            embedder.runtime = TorchRuntime(embedder.model)
        embedder.precision = precision
        return
    embedder.runtime, embedder.precision = builder.build(runtime, precision, announce=False), precision


def _torch_fallback(embedder: Any, precision: str, why: str) -> dict:
    """Torch without measuring: at ``precision`` where asked, else bf16 where native, else fp32."""
    from pipeline.embed.embedder import resolve_precision

    if precision == "int8":
        raise ModelLoadError(f"precision int8 needs an exported runtime, and {why}: use --precision fp32")
    prec = resolve_precision(precision, "cpu")
    _apply_cached(embedder, None, "torch", prec)
    if why not in _warned:
        _warned.add(why)
        log.warning("runtime auto: %s: running torch %s, nothing measured", why, prec)
    name = label("torch", prec)
    return {"version": DECISION_VERSION, "chosen": name, "complete": False, "decided": "fallback",
            "reason": f"{why}: torch {prec}, nothing measured", "rows": {name: {"status": "unmeasured"}},
            "key_parts": {"cpu": cpu.signature()}}


def summary(record: dict) -> dict:
    """What ``Embedder.auto_choice`` carries of a decision (for ``summary.json``'s
    ``model.auto``): the choice, why, how it was decided, each candidate's row, the CPU."""
    rows = {name: {k: row[k] for k in ("status", "img_s", "min_cosine", "agrees", "until", "reason")
                   if k in row} for name, row in record.get("rows", {}).items()}
    return {"chosen": record.get("chosen"), "reason": record.get("reason"), "decided": record.get("decided"),
            "complete": record.get("complete"), "candidates": rows,
            "cpu": record.get("key_parts", {}).get("cpu"), "decision": record.get("key"),
            "measured_at": record.get("date")}
