# Set-up and checks on a fresh machine: `make run` and `make test` create .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The local CPU build; an unpinned torch would pull several GB of CUDA packages.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: run test test-slow lint bench bench-quick gallery synthesis-gallery clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[search,pretrained,atari,export,serve,dev]"
	touch $(STAMP)

# Debian's Chromium and its driver, for the web page's test in a real headless browser
BROWSER := /usr/bin/chromedriver
$(BROWSER):
	command -v apt-get >/dev/null && { apt-get install -y -q --no-install-recommends chromium chromium-driver \
		|| { apt-get update -q && apt-get install -y -q --no-install-recommends chromium chromium-driver; }; } \
		|| echo "could not install chromium (needs root and Debian's packages): the browser test will fail"

run: $(STAMP)
	$(BIN)/striate train

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

# one worker per core, each test file on one worker (its module fixtures are built once)
test: lint $(BROWSER)
	$(BIN)/python -m pytest -n auto --dist loadfile

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

# Every peer benchmark, then the summary table in BENCHMARKS.md: 47 min on the idle 2-core AMD EPYC
# (2026-12-04). Shortened from the scripts' defaults: kNN 1 round instead of 3 (_classic_knn.py
# directly), classic's nca and linear sections, interpret and synthesis 1 round instead
# of 3, char_lm the two nanoGPT transformer rows (no LSTM), rl and sgds seed 0 only (3 seeds each
# by default), and the airbench pair one epoch of 9,216 images, seed 0: its ratio per step (the
# full run, `benchmarks/cifar10_vs_airbench.py --seeds 0 1 2`, takes ~25 min a run on a CPU with
# AMX, ~15 min on a Zen 4 EPYC in bf16 and ~45 min on this AVX2 CPU in fp32; on a GPU seconds:
# add --device cuda).
BENCH := $(BIN)/python benchmarks
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[bench]"
	$(BENCH)/data.py
	$(BENCH)/_classic_knn.py --repeats 1
	$(BENCH)/classic.py --sections nca,linear
	$(BENCH)/trainer_overhead.py --threads 1
	$(BENCH)/cifar10_vs_airbench.py --seeds 0 --epochs 1 --train-size 9216 --test-size 2000
	$(BENCH)/geometry.py --repeats 1
	$(BENCH)/interpret.py --threads 2 --rounds 1
	$(BENCH)/synthesis.py --threads 2 --rounds 1
	$(BENCH)/detection.py --threads 1
	$(BENCH)/sequence.py --threads 1
	$(BENCH)/char_lm.py --threads 1 --models transformer,transformer-blocks
	OMP_NUM_THREADS=1 $(BENCH)/rl.py --seeds 0
	$(BENCH)/export.py
	OMP_NUM_THREADS=1 $(BENCH)/scratch.py
	OMP_NUM_THREADS=1 $(BENCH)/sgds.py --seeds 0
	$(BENCH)/serve_load.py
	$(BENCH)/summary.py

# A smoke test of the whole chain: every peer benchmark with --quick (each records nothing), then
# the summary of the records as they are.
bench-quick: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[bench]"
	$(BENCH)/data.py --quick
	$(BENCH)/classic.py --quick
	$(BENCH)/trainer_overhead.py --quick
	$(BENCH)/geometry.py --quick
	$(BENCH)/interpret.py --quick
	$(BENCH)/synthesis.py --quick
	$(BENCH)/detection.py --quick
	$(BENCH)/sequence.py --quick
	$(BENCH)/char_lm.py --quick
	OMP_NUM_THREADS=1 $(BENCH)/rl.py --quick
	$(BENCH)/export.py --quick
	OMP_NUM_THREADS=1 $(BENCH)/scratch.py --quick
	OMP_NUM_THREADS=1 $(BENCH)/sgds.py --quick
	$(BENCH)/serve_load.py --quick
	$(BENCH)/cifar10_vs_airbench.py --quick
	$(BENCH)/cifar10_vs_airbench.py --quick --peer airbench94_muon --recipe cifar10-quick
	$(BENCH)/threads_under_load.py --quick
	$(BENCH)/summary.py

gallery: $(STAMP)
	$(BIN)/python docs/gallery.py

synthesis-gallery: $(STAMP)
	$(BIN)/python docs/synthesis.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache runs
