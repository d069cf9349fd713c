"""Live-input latency: how long after unsafe content appears on a live
stream its ``nsfw`` event is out.

    .venv/bin/python benchmarks/live_bench.py            # demo model, demo_street.mp4 served live
    .venv/bin/python benchmarks/live_bench.py --runs 3 --out benchmarks/live_results.json

The bundled demo clip ``sample_videos/demo_street.mp4`` (320x240, 15 fps,
18 s) is re-encoded to MPEG-TS and served in real time on 127.0.0.1 over
TCP; ``scenetag run`` (the library call the CLI makes) tags it live with
``configs/demo.yaml``, whose NSFW stand-in label ``skull`` is on screen from
7 s to 11 s (``demo_truth.json``). Rows, per run:

* ``event_latency_s``: from the arrival of the frame whose smoothed score
  crossed the threshold to the ``nsfw`` event (decode queue + model +
  smoothing's half window + the tracker);
* ``onset_latency_s``: from the arrival of the first sampled frame at or
  after the true onset (7 s of stream; ``frames.csv``'s ``wall_time``) to
  the event: adds the model's own doubt near the edge;
* ``confirm_after_s``: from the ``nsfw`` event to its ``confirm`` (the
  minimum duration rule).

Not part of the test suite. Timings move with machine load; compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for folder in (ROOT, ROOT / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from live_servers import TcpStream, write_ts  # noqa: E402

from pipeline.config import load_config  # noqa: E402
from pipeline.live.session import LiveOptions  # noqa: E402
from pipeline.run.job import RunOptions, run_job  # noqa: E402

CLIP = ROOT / "sample_videos" / "demo_street.mp4"
TRUTH = ROOT / "sample_videos" / "demo_truth.json"
CONFIG = ROOT / "configs" / "demo.yaml"


def clip_frames(path: Path) -> tuple[list, int]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = round(float(stream.average_rate))
        return [f.to_ndarray(format="rgb24") for f in container.decode(stream)], fps


def onset(label: str) -> float:
    truth = json.loads(TRUTH.read_text("utf-8"))["clips"][CLIP.name]
    return next(i["start_s"] for i in truth["intervals"] if i["label"] == label)


def one_run(frames: list, fps: int, config, embedder, work: Path) -> dict:
    events_path = work / "events.jsonl"
    with TcpStream(lambda out, n: write_ts(out, len(frames), fps, picture=frames.__getitem__)) as server:
        live = LiveOptions(events=str(events_path), handle_signals=False)
        run_job([server.url], config, work / "out", RunOptions(progress=False, use_store=False, live=live),
                embedder=embedder)
    events = [json.loads(line) for line in events_path.read_text("utf-8").splitlines()]
    frames_csv = next((work / "out").glob("*/frames.csv"))
    rows = [line.split(",") for line in frames_csv.read_text("utf-8").splitlines()[1:]]
    onset_wall = next(_seconds(r[2]) for r in rows if float(r[1]) >= onset("skull") - 1e-6)
    fired = [e for e in events if e["event"] == "nsfw"]
    if not fired:
        return {"nsfw_events": 0}
    first = fired[0]
    confirm = next((e for e in events if e["event"] == "confirm" and e["start_s"] == first["start_s"]), None)
    return {"nsfw_events": len(fired), "event_latency_s": first["latency_s"],
            "onset_latency_s": round(_seconds(first["emitted_at"]) - onset_wall, 3),
            "confirm_after_s": round(_seconds(confirm["emitted_at"]) - _seconds(first["emitted_at"]), 3)
            if confirm else None, "segment_start_s": first["start_s"]}


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    args = p.parse_args(argv)
    from pipeline.prepare import load_model

    config = load_config(CONFIG, {"model.device": "cpu"})
    embedder = load_model(config)
    frames, fps = clip_frames(CLIP)
    rows = []
    for n in range(args.runs):
        with tempfile.TemporaryDirectory() as work:
            rows.append({"run": n, **one_run(frames, fps, config, embedder, Path(work))})
        print(json.dumps(rows[-1]))
    result = {"bench": "live nsfw latency", "clip": CLIP.name, "fps": fps,
              "sampling_s": config.sampling.every_seconds,
              "nsfw_smoothing": config.nsfw.smoothing.model_dump(),
              "model": os.path.relpath(config.model.id, ROOT), "rows": rows,
              "load_avg_1min_at_end": os.getloadavg()[0],
              "cores": os.cpu_count(), "measured_at": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
