# scenetag — make install | test | demo | lint | bench | fuzz | sample-videos
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install test demo lint bench fuzz sample-videos demo-videos train-demo-model clean

install: $(STAMP)

# torch==2.13.0 is pinned first: it installs the CPU build from this machine's
# wheel cache; a looser spec would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[all,dev]"
	touch $(STAMP)

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/scenetag run sample_videos/demo_*.mp4 -c configs/demo.yaml -o reports/demo
	@echo "demo reports: reports/demo/index.csv and reports/demo/<clip>/"

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) benchmarks/bench.py
	$(PY) benchmarks/families_bench.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/refine_bench.py --out benchmarks/refine_results.json
	$(PY) benchmarks/startup_bench.py

# A library of 20, 200 and 2,000 generated clips through --engine ray, and a killed run resumed
# (about 6 minutes on 2 cores; docs/SCALING.md).
.PHONY: bench-scale
bench-scale: install
	$(PY) benchmarks/scale_bench.py

# Only the CPU runtime x precision rows and their agreement (a few minutes; for an idle re-run).
.PHONY: bench-runtimes
bench-runtimes: install
	$(PY) benchmarks/bench.py --runtimes-only --rounds 3 --decode-study

fuzz: install
	HF_HUB_OFFLINE=1 SCENETAG_FUZZ_COUNT=300 $(PY) -m pytest -q tests/test_fuzz.py

sample-videos: install
	$(PY) tools/make_sample_videos.py

demo-videos: install
	$(PY) tools/make_demo_videos.py

train-demo-model: install
	$(PY) tools/train_demo_model.py --out models/scenetag-demo-clip --steps 3000 --batch-size 64 \
		--train-size 16000 --eval-size 700 --lr 0.001 --seed 0

clean:
	rm -rf reports .pytest_cache
