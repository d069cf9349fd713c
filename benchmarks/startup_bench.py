"""Start-up of the CLI (issue 29): how long a command takes before it is of
use, against the targets on 2 cores.

    .venv/bin/python benchmarks/startup_bench.py

Rows (best of ``--rounds`` fresh processes each, wall seconds):

* ``--help``, ``config validate configs/demo.yaml``: the whole command (target < 1 s);
* ``search (prompt cached)``: ``scenetag search`` over a store of the demo
  clips, with the query's text embedding already in the store's prompt cache
  (target < 1.5 s);
* ``run: first line on a terminal``: from the start of ``scenetag run`` on
  a demo clip to the first byte on its stderr, a pty (target < 1 s; to a
  pipe or file a run says nothing until its summary line).

The store is made once by ``scenetag run`` of the demo clips with the demo
model. Not part of the test suite; timings move with load, so compare a
row with its target within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_parts import machine  # noqa: E402

SCENETAG = [sys.executable, "-m", "pipeline.cli"]
CONFIG = ROOT / "configs" / "demo.yaml"
CLIPS = sorted((ROOT / "sample_videos").glob("demo_*.mp4"))
OUT = ROOT / "benchmarks" / "startup_results.json"
QUERY = "a photo of a coffee cup."
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def whole(args: list[str], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        done = subprocess.run(SCENETAG + args, cwd=ROOT, env=ENV, capture_output=True)
        best = min(best, time.perf_counter() - started)
        if done.returncode != 0:
            said = done.stderr.decode()[-500:]
            raise SystemExit(f"scenetag {' '.join(args)}: exit {done.returncode}: {said}")
    return round(best, 3)


def first_terminal_byte(args: list[str], rounds: int) -> float:
    """Seconds to the first byte on stderr when stderr is a terminal (a pty):
    what a user at a shell waits before the command says anything."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    best = float("inf")
    for _ in range(rounds):
        leader, follower = pty.openpty()
        # a fresh pty is 0 columns wide, where tqdm draws nothing: size it as a terminal
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        started = time.perf_counter()
        proc = subprocess.Popen(SCENETAG + args, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                                stderr=follower)
        os.close(follower)
        ready, _, _ = select.select([leader], [], [], 120)
        if ready:
            best = min(best, time.perf_counter() - started)
        while True:  # drain, or the child blocks on a full pty
            try:
                if not os.read(leader, 65536):
                    break
            except OSError:  # EIO: the child closed its end
                break
        proc.wait()
        os.close(leader)
    return round(best, 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="scenetag-startup-") as tmp:
        reports = Path(tmp) / "reports"
        subprocess.run(SCENETAG + ["run", *map(str, CLIPS), "-c", str(CONFIG), "-o", str(reports), "-q"],
                       cwd=ROOT, env=ENV, check=True)
        search = ["search", QUERY, "--store", str(reports / "store"), "-o", str(Path(tmp) / "found")]
        whole(search, 1)  # puts the query's embedding in the prompt cache
        rows = {
            "--help": (whole(["--help"], args.rounds), 1.0),
            "config validate": (whole(["config", "validate", str(CONFIG)], args.rounds), 1.0),
            "search (prompt cached)": (whole(search, args.rounds), 1.5),
            "run: first line on a terminal": (first_terminal_byte(
                ["run", str(CLIPS[0]), "-c", str(CONFIG), "-o", str(Path(tmp) / "again")], args.rounds), 1.0),
        }
    result = {"date": time.strftime("%Y-%m-%d"), "machine": machine(),
              "rows": {name: {"seconds": s, "target_s": t, "grade": "PASS" if s < t else "FAIL"}
                       for name, (s, t) in rows.items()}}
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for name, row in result["rows"].items():
        print(f"{name:26s} {row['seconds']:7.3f} s  (target < {row['target_s']} s)  {row['grade']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
