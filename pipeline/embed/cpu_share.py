"""Thread pools that sleep while they wait, because the decoder shares the cores.

On a CPU the decoder (FFmpeg's frame threads) and the model run at the same
time on the same cores. A thread pool that *spins* while it waits for work
holds a core the decoder needs, and when the decoder pre-empts one of its
threads the others spin at the next barrier until it comes back. Two pools
spin by default:

* libgomp, torch's OpenMP on Linux: every thread spins for a while at each
  barrier before it sleeps (``OMP_WAIT_POLICY`` unset). libgomp reads the
  policy once, when torch is first imported, so it is set in the environment
  before that (:func:`sleeping_openmp`, called by the CLI and the benchmark).
* ONNX Runtime's intra-op pool (``session.intra_op.allow_spinning``), turned
  off per session (:data:`ONNXRUNTIME_SESSION_CONFIG`).

OpenVINO's pool sleeps, but it pins its threads to cores, so a decoder
thread that lands on a pinned core stalls the model's work there; it is
compiled unpinned (:data:`OPENVINO_COMPILE_CONFIG`).

On the 2-core bench machine the local engine with spinning pools used
6.2-7.9 s of CPU for 60 frames whose decode and model cost 5.6 s apart, and
ran at 17-20 frames/s; with sleeping pools 4.8-5.2 s and 21-23 frames/s,
model-only speed within the machine's noise; OpenVINO int8 unpinned ran
25.6-29.2 frames/s against 22.4-25.6 pinned (docs/PERFORMANCE.md, "Sharing
two cores").
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping

# ONNX Runtime session config entries: its pools sleep instead of spinning when idle.
ONNXRUNTIME_SESSION_CONFIG = {"session.intra_op.allow_spinning": "0",
                              "session.inter_op.allow_spinning": "0"}

# OpenVINO compile properties: threads not pinned to cores the decoder also runs on.
OPENVINO_COMPILE_CONFIG = {"ENABLE_CPU_PINNING": False}


def sleeping_openmp(environ: MutableMapping[str, str] = os.environ) -> bool:
    """Ask OpenMP for sleeping waits (``OMP_WAIT_POLICY=PASSIVE``) unless the
    user chose a policy or a spin count; True when it will take effect.

    libgomp reads its environment when torch first loads it, so this must run
    before ``import torch``; afterwards it changes nothing and says so.
    """
    if "OMP_WAIT_POLICY" in environ or "GOMP_SPINCOUNT" in environ:
        return False  # the user's own choice wins
    if "torch" in sys.modules:
        return False  # too late: libgomp has read its settings
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True
