"""The live frame queue: newest frames win when the model falls behind a live
stream, a stream ahead of real time waits instead, markers are never lost,
and memory stays bounded however long the stream (pipeline.live.frames)."""

from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np

from pipeline.live.frames import Backoff, Gap, LatestQueue, LiveFrame, StreamEnd


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _frame(i: int, t: float, size: int = 8) -> LiveFrame:
    return LiveFrame(i, t, 1e9 + t, np.zeros((size, size, 3), np.uint8), 0.0)


def test_a_live_stream_drops_its_oldest_frames():
    clock, stop = Clock(), threading.Event()
    queue = LatestQueue(3, threading.Event(), clock)
    for i in range(10):  # real time keeps up with the stream: it is live
        clock.now = 100.0 + i
        queue.put_frame(_frame(i, float(i)), stop)
    assert [f.index for f in queue.take(10)] == [7, 8, 9]
    assert queue.dropped == 7 and queue.high_water == 3


def test_a_stream_ahead_of_real_time_waits_instead():
    clock, stop = Clock(), threading.Event()
    queue = LatestQueue(2, threading.Event(), clock)
    queue.put_frame(_frame(0, 0.0), stop)
    queue.put_frame(_frame(1, 5.0), stop)  # 5 s of stream in no time: a file piped in
    waiting = threading.Thread(target=queue.put_frame, args=(_frame(2, 10.0), stop))
    waiting.start()
    time.sleep(0.2)
    assert waiting.is_alive() and queue.dropped == 0  # it waits for room
    assert [f.index for f in queue.take(1)] == [0]
    waiting.join(2)
    assert not waiting.is_alive() and [f.index for f in queue.take(5)] == [1, 2]
    assert queue.dropped == 0


def test_markers_are_never_dropped_and_end_a_take():
    clock, stop = Clock(), threading.Event()
    queue = LatestQueue(2, threading.Event(), clock)
    queue.put_frame(_frame(0, 0.0), stop)
    queue.put_marker(Gap(0.0, 1.0, "connection closed"))
    for i in range(1, 5):
        clock.now += 1
        queue.put_frame(_frame(i, float(i)), stop)
    queue.put_marker(StreamEnd("eof"))
    assert isinstance(queue.take(10)[0], Gap)  # frame 0 was dropped, the gap was not
    assert [f.index for f in queue.take(10)] == [3, 4]
    assert isinstance(queue.take(10)[0], StreamEnd) and queue.take(10) == []


def test_memory_stays_flat_over_a_stream_much_longer_than_the_queue():
    clock, stop = Clock(), threading.Event()
    queue = LatestQueue(4, threading.Event(), clock)
    frame_bytes = 64 * 64 * 3
    tracemalloc.start()
    try:
        for i in range(2000):  # a consumer that takes one frame in ten
            clock.now = 100.0 + i / 10
            queue.put_frame(_frame(i, i / 10, 64), stop)
            if i % 10 == 0:
                queue.take(1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert queue.high_water == 4 and queue.dropped > 1500
    assert peak < 20 * frame_bytes  # 2000 frames went by, a handful were ever held


def test_backoff_doubles_up_to_its_cap():
    assert [Backoff(0.5, 4.0).delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
