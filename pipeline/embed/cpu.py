"""What this CPU is, where runtime and precision speed depend on it.

Machines of one kind differ in instruction set (the project's 2-core VMs came as
a Zen 5 with AVX-512 bf16 and VNNI and as a Zen 3 with AVX2 only), and which
runtime × precision wins follows the ISA: bf16 is emulated, 7× slower than
fp32, without ``avx512_bf16``/``amx_bf16``; int8 dot products saturate in
ONNX Runtime's u8s8 kernels without VNNI. So ``runtime: auto`` measures on the
machine and caches its decision under :func:`signature` (CPU model, the ISA
flags that matter, usable cores) and the runtimes' :func:`versions`.

Tests fake a CPU by replacing :func:`cpuinfo_text` (every other function reads
the flags through it at call time).
"""

from __future__ import annotations

import functools
import os
import platform
from importlib import metadata
from pathlib import Path

# The flags that decide which runtime and precision are fast (x86, then ARM).
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile",
             "amx_bf16", "amx_int8", "asimd", "asimddp", "bf16", "i8mm", "sve")
NATIVE_BF16 = ("avx512_bf16", "amx_bf16")
# An 8-bit dot product that accumulates without saturating (x86 VNNI, AMX; ARM's SDOT).
INT8_DOT = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")
# The packages whose version changes what an export or a timing gives.
RUNTIME_PACKAGES = ("torch", "transformers", "openvino", "nncf", "onnxruntime")


@functools.cache
def cpuinfo_text() -> str:
    """``/proc/cpuinfo`` ("" where there is none: macOS, Windows)."""
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def flags() -> frozenset[str]:
    """The first processor's flags (x86 ``flags``, ARM ``Features``)."""
    for line in cpuinfo_text().splitlines():
        if line.startswith(("flags", "Features")) and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def model_name() -> str:
    """The CPU's model name as the kernel reports it, else the platform's guess."""
    for line in cpuinfo_text().splitlines():
        if line.startswith(("model name", "Model", "CPU part")) and ":" in line:
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cores() -> int:
    """Cores this process may run on (its affinity, which ``taskset`` and containers narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def isa() -> list[str]:
    """The :data:`ISA_FLAGS` this CPU has, in that order."""
    have = flags()
    return [f for f in ISA_FLAGS if f in have]


def has_native_bf16() -> bool:
    """Whether bf16 runs in hardware (AVX-512 bf16 or AMX); elsewhere it is emulated."""
    return any(f in flags() for f in NATIVE_BF16)


def has_int8_dot() -> bool:
    """Whether 8-bit dot products accumulate without saturating (VNNI, AMX, ARM dot product)."""
    return any(f in flags() for f in INT8_DOT)


def signature() -> dict:
    """What a measured decision holds for: CPU model, ISA flags that matter, cores."""
    return {"cpu": model_name(), "isa": isa(), "cores": cores(), "machine": platform.machine()}


def versions() -> dict[str, str | None]:
    """Installed versions of :data:`RUNTIME_PACKAGES` (None: not installed), read
    from package metadata without importing them (NNCF takes seconds)."""
    out: dict[str, str | None] = {}
    for name in RUNTIME_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
