#!/usr/bin/env bash
# The GPU checks of issue 4, prepared so that a session lent a GPU machine
# (15 minutes of device time, no network there) spends it measuring.
#
#   bash benchmarks/gpu_session.sh fetch   # here, with network: wheels the GPU image lacks -> .whl/
#   bash benchmarks/gpu_session.sh run     # there (device `run`, carry [".whl"]): tests + benchmark -> $OUT
#
# The GPU image has Python 3.12 with torch (CUDA), transformers, numpy,
# pandas, matplotlib, typer, tqdm, pyyaml and pytest, but not PyAV or
# pydantic: `fetch` downloads those, at the versions installed in .venv here,
# as manylinux wheels for CPython 3.12 (≈37 MB; the tree sent to the device
# may be 64 MiB). The store (lancedb) is not needed: the benchmark runs with
# --no-store.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(av pydantic pydantic-core annotated-types typing-inspection)

fetch() {
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    mkdir -p .whl
    local specs=()
    for name in "${WHEELS[@]}"; do
        specs+=("$name==$(.venv/bin/python -m pip show "$name" | awk '/^Version:/ {print $2}')")
    done
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d .whl "${specs[@]}"
    du -sh .whl
}

run() {
    : "${OUT:?run this on the device machine, where \$OUT is set}"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
    python3 -c 'import torch, transformers, av; print(torch.__version__, transformers.__version__, av.__version__)' \
        | tee -a "$OUT/gpu.txt"
    # The CUDA path against the CPU reference, then the embedder tests.
    python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_embed.py 2>&1 | tee "$OUT/tests.log"
    # Throughput: naive loop, decode only, model only (fp16), end to end,
    # precision study and model-only at batch 1024 (issue 4's H100 targets).
    python3 benchmarks/bench.py --device cuda --no-store --skip-rss --out "$OUT/results_cuda.json" \
        2>&1 | tee "$OUT/bench.log"
}

case "${1:-}" in
    fetch) fetch ;;
    run) run ;;
    *) echo "usage: $0 fetch|run" >&2; exit 2 ;;
esac
