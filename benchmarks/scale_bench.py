"""A library of many inputs through ``--engine ray`` (issue 31): the
driver's peak memory against the input count, where its time per input goes,
the store's write rate and fragments, and a driver killed mid-run resumed.

    .venv/bin/python benchmarks/scale_bench.py                       # 20, 200 and 2,000 inputs
    .venv/bin/python benchmarks/scale_bench.py --inputs 20 200 --kill-at 100

Each input is a unique 2 s clip (10 fps, 64x64 H.264, its own noise, so the
store's content hashes never make one input a cache hit of another), run
with the demo model and config at one frame a second, ``--formats csv,json``
(plots are a per-input cost of their own, measured in the local rows of
``bench.py``) and the store on. Rows, one per input count:

* ``driver_peak_rss_mb``: the driver process's own peak RSS (``ru_maxrss``;
  Ray's workers and raylet are other processes);
* ``wall_s``, ``per_input_ms``: the whole run;
* ``driver_ms_per_input``: with cProfile on the driver's main thread, the
  cumulative time per input of each driver stage: receiving rows
  (``regroup``), edge refinement rounds (``refine``), scoring and smoothing
  (``score``), reports (``reports``), store writes (``store``);
* ``store``: rows, rows/s of ``put``, fragments at the end.

The resume row kills the driver (SIGKILL) once ``--kill-at`` inputs have
their summary.json, reruns with ``--resume`` and checks that every input
ends ``ok``, the finished ones were skipped and each frame is in the store
once. Not part of the test suite; compare rows of one run, on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_parts import machine  # noqa: E402

MODEL = ROOT / "models" / "scenetag-demo-clip"
CONFIG = ROOT / "configs" / "demo.yaml"
OUT = ROOT / "benchmarks" / "scale_results.json"

# cProfile functions (file suffix, function name) summed into each driver stage
STAGES = {
    "regroup": [("engine/ray.py", "_regroup")],
    "refine": [("run/refine.py", "fetch")],
    "score": [("run/job.py", "_video_result")],
    "reports": [("run/job.py", "_write_reports")],
    "store": [("store/cache.py", "save"), ("store/cache.py", "finish")],
}

# Run inside the driver: the CLI, then its own peak RSS and (optionally) its profile.
DRIVER = """
import atexit, cProfile, json, resource, sys
profile_to, rss_to = sys.argv[1], sys.argv[2]
sys.argv = ["scenetag"] + sys.argv[3:]
profiler = cProfile.Profile() if profile_to != "-" else None
def done():
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile_to)
    with open(rss_to, "w") as f:
        json.dump({"peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}, f)
atexit.register(done)
if profiler is not None:
    profiler.enable()
from pipeline.cli import main
main()
"""


def make_clips(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` unique 2 s clips; reused when already there."""
    import av

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"clip{i:05d}.mp4"
        paths.append(path)
        base = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        if path.exists():
            continue
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=10, options={"preset": "ultrafast"})
            stream.width = stream.height = 64
            stream.pix_fmt = "yuv420p"
            for f in range(20):
                frame = np.roll(base, f, axis=1)
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    return paths


def driver(args: list[str], work: Path, profile: bool) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SCENETAG_AUTO_BUDGET_S": "5"}
    prof = str(work / "driver.prof") if profile else "-"
    return subprocess.Popen([sys.executable, "-c", DRIVER, prof, str(work / "rss.json"), *args],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(work / "stderr.txt", "w"),
                            start_new_session=True)


def run_args(listing: Path, out: Path, *extra: str) -> list[str]:
    return ["run", str(listing), "-c", str(CONFIG), "-m", str(MODEL), "--engine", "ray",
            "--every-seconds", "1", "--formats", "csv,json", "-o", str(out), "--store", str(out / "store"),
            "-q", *extra]


def stage_ms(profile: Path, inputs: int) -> dict[str, float]:
    import pstats

    stats = pstats.Stats(str(profile)).stats  # {(file, line, func): (cc, nc, tt, ct, callers)}
    out = {}
    for stage, names in STAGES.items():
        total = sum(ct for (file, _, func), (_, _, _, ct, _) in stats.items()
                    if any(file.endswith(suffix) and func == name for suffix, name in names))
        out[stage] = round(1000 * total / inputs, 2)
    return out


def store_facts(store_dir: Path) -> dict:
    import lancedb

    db = lancedb.connect(str(store_dir))
    table = db.open_table("frames")
    keys = table.to_arrow().select(["key", "frame_index"]).to_pandas()
    return {"rows": int(table.count_rows()), "distinct_frames": int(len(keys.drop_duplicates())),
            "inputs": int(keys["key"].nunique()),
            "fragments": int(table.stats()["fragment_stats"]["num_fragments"])}


def one_count(root: Path, clips: list[Path], count: int) -> dict:
    work = root / f"run{count}"
    work.mkdir()
    listing = work / "inputs.txt"
    listing.write_text("".join(f"{p}\n" for p in clips[:count]), encoding="utf-8")
    started = time.perf_counter()
    proc = driver(run_args(listing, work / "out"), work, profile=True)
    rc = proc.wait()
    wall = time.perf_counter() - started
    if rc != 0:
        raise SystemExit(f"{count} inputs: exit {rc}: {(work / 'stderr.txt').read_text()[-2000:]}")
    rss = json.loads((work / "rss.json").read_text())["peak_rss_kb"] / 1024
    stages = stage_ms(work / "driver.prof", count)
    store = store_facts(work / "out" / "store")
    store_s = stages["store"] * count / 1000
    store["rows_per_s"] = round(store["rows"] / store_s, 1) if store_s else None
    row = {"inputs": count, "wall_s": round(wall, 1), "per_input_ms": round(1000 * wall / count, 1),
           "driver_peak_rss_mb": round(rss, 1), "driver_ms_per_input": stages, "store": store}
    print(json.dumps(row), flush=True)
    return row


def resume_row(root: Path, clips: list[Path], count: int, kill_at: int) -> dict:
    work = root / f"resume{count}"
    work.mkdir()
    out = work / "out"
    listing = work / "inputs.txt"
    listing.write_text("".join(f"{p}\n" for p in clips[:count]), encoding="utf-8")
    proc = driver(run_args(listing, out), work, profile=False)
    while proc.poll() is None and len(list(out.glob("*/summary.json"))) < kill_at:
        time.sleep(0.05)
    finished_at_kill = len(list(out.glob("*/summary.json")))
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started (its own session)
    proc.wait()
    started = time.perf_counter()
    again = driver(run_args(listing, out, "--resume"), work, profile=False)
    rc = again.wait()
    index = (out / "index.csv").read_text(encoding="utf-8").splitlines()
    ok = sum(1 for line in index[1:] if ",ok," in line)
    store = store_facts(out / "store")
    row = {"resume_inputs": count, "killed_after": finished_at_kill, "rc": rc, "ok": ok,
           "rerun_s": round(time.perf_counter() - started, 1), "store": store,
           "each_frame_once": store["rows"] == store["distinct_frames"] and store["inputs"] == count}
    print(json.dumps(row), flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, nargs="+", default=[20, 200, 2000])
    parser.add_argument("--kill-at", type=int, default=100, help="resume row: kill after this many inputs")
    parser.add_argument("--resume-inputs", type=int, default=200)
    parser.add_argument("--clips", type=Path, default=None, help="folder for the generated clips (kept)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="scenetag-scale-") as tmp:
        root = Path(tmp)
        clips = make_clips(args.clips or root / "clips", max(args.inputs + [args.resume_inputs]))
        rows = [one_count(root, clips, n) for n in args.inputs]
        resume = resume_row(root, clips, args.resume_inputs, args.kill_at) if args.kill_at else None
    base = rows[0]["driver_peak_rss_mb"]
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "rows": rows, "resume": resume,
              "rss_ratio_largest_to_smallest": round(rows[-1]["driver_peak_rss_mb"] / base, 2),
              "rss_target": 1.5}
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"driver RSS {rows[-1]['inputs']} vs {rows[0]['inputs']} inputs: "
          f"{result['rss_ratio_largest_to_smallest']}x (target <= 1.5x); written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
