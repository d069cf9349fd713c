"""Live inputs by protocol: how soon the first frame is out and how late each frame is.

    .venv/bin/python benchmarks/live_protocols_bench.py                 # one run of each protocol
    .venv/bin/python benchmarks/live_protocols_bench.py --runs 3 --out benchmarks/live_protocols_results.json

Each protocol serves the same generated stream on 127.0.0.1 (H.264,
x264 ``ultrafast``/``zerolatency``, no B-frames, a keyframe every 10
frames, 320x240 at 25 fps, paced in real time; each frame shows its index), with
the loopback servers of the tests: raw TCP and UDP (MPEG-TS), RTSP over
TCP (interleaved) and over UDP, plain RTP (both MPEG-TS in RTP, payload
type 33) and RTMP through nginx's RTMP module (FLV; skipped without it).
The reader opens the input exactly as ``scenetag run`` does
(:func:`pipeline.live.sources.open_args`) and decodes; no model runs.
Rows, per protocol and run:

* ``open_s``: ``av.open`` (connect + the 1 s probe);
* ``first_frame_s``: from the start of the open to the first decoded frame;
* ``first_index``: that frame's index (the frames a late joiner missed;
  a datagram input starts at the first keyframe it reads);
* ``transit_ms_median`` / ``_p95``: from the moment frame i was handed to
  the encoder to the moment it came out of the decoder, over the frames
  after the first second (encode + mux + transport + demux + decode);
* ``frames``: decoded, of those sent while the reader was open.

Not part of the test suite. Timings move with machine load; compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for folder in (ROOT, ROOT / "tests"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import av  # noqa: E402
from live_protocol_servers import NginxRtmp, RtpMp2t, RtspServer, publish_rtmp, rtmp_module  # noqa: E402
from live_servers import TcpStream, UdpSender, free_udp_port, write_ts  # noqa: E402
from media import index_image, read_index  # noqa: E402

from pipeline.live.sources import LiveSource, live_kind, open_args  # noqa: E402

SIZE, FPS, SECONDS = (320, 240), 25, 6


class Clock:
    """When each frame index was handed to the encoder (the picture is drawn then)."""

    def __init__(self):
        self.sent: dict[int, float] = {}

    def picture(self, i: int):
        self.sent.setdefault(i, time.monotonic())
        return index_image(i, SIZE)


def read(url: str, clock: Clock, seconds: float) -> dict:
    source = LiveSource(url, live_kind(url))
    file, kwargs = open_args(source, 3.0)
    started = time.monotonic()
    container = av.open(file, **kwargs)
    opened = time.monotonic()
    first_s = first_index = None
    transit, frames = [], 0
    try:
        for vf in container.decode(video=0):
            now = time.monotonic()
            index = read_index(vf.to_ndarray(format="rgb24"))
            frames += 1
            if first_s is None:
                first_s, first_index = now - started, index
            if index in clock.sent and index >= first_index + FPS:
                transit.append((now - clock.sent[index]) * 1000)
            if now - started > seconds:
                break
    except (av.FFmpegError, OSError):  # the sender ended and the input timed out
        pass
    finally:
        container.close()
    transit.sort()
    return {"open_s": round(opened - started, 3), "first_frame_s": round(first_s or -1, 3),
            "first_index": first_index, "frames": frames,
            "transit_ms_median": round(statistics.median(transit), 1) if transit else None,
            "transit_ms_p95": round(transit[int(len(transit) * 0.95)], 1) if transit else None}


def _frames() -> int:
    return FPS * (SECONDS + 2)


def tcp(clock: Clock, work: Path) -> dict:
    with TcpStream(lambda out, n: write_ts(out, _frames(), FPS, picture=clock.picture)) as server:
        return read(server.url, clock, SECONDS)


def udp(clock: Clock, work: Path) -> dict:
    port = free_udp_port()
    threading.Thread(target=lambda: write_ts(UdpSender(port), _frames(), FPS, picture=clock.picture),
                     daemon=True).start()
    return read(f"udp://127.0.0.1:{port}", clock, SECONDS)


def rtsp(transport: str):
    def run(clock: Clock, work: Path) -> dict:
        with RtspServer(lambda out, n: write_ts(out, _frames(), FPS, picture=clock.picture),
                        transports=(transport,)) as server:
            return read(server.url, clock, SECONDS)
    return run


def rtp(clock: Clock, work: Path) -> dict:
    port, stop = free_udp_port(), threading.Event()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out = RtpMp2t(lambda channel, packet: sock.sendto(packet, ("127.0.0.1", port + channel)), stop)
    threading.Thread(target=lambda: write_ts(out, _frames(), FPS, picture=clock.picture), daemon=True).start()
    try:
        return read(f"rtp://127.0.0.1:{port}", clock, SECONDS)
    finally:
        stop.set()
        sock.close()


def rtmp(clock: Clock, work: Path) -> dict:
    with NginxRtmp(work / "nginx") as server:
        url = f"{server.base}/bench"
        publish_rtmp(url, _frames(), FPS, picture=clock.picture, start_when=lambda: server.played("bench"))
        return read(url, clock, SECONDS)


PROTOCOLS = {"tcp": tcp, "udp": udp, "rtsp/tcp": rtsp("TCP"), "rtsp/udp": rtsp("UDP"), "rtp": rtp,
             "rtmp": rtmp}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    args = p.parse_args(argv)
    rows = []
    for n in range(args.runs):
        for name, run in PROTOCOLS.items():
            if name == "rtmp" and rtmp_module() is None:
                continue
            with tempfile.TemporaryDirectory() as work:
                rows.append({"run": n, "protocol": name, **run(Clock(), Path(work))})
            print(json.dumps(rows[-1]), flush=True)
    result = {"bench": "live protocols", "size": list(SIZE), "fps": FPS, "seconds": SECONDS, "rows": rows,
              "load_avg_1min_at_end": os.getloadavg()[0], "cores": os.cpu_count(),
              "measured_at": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
