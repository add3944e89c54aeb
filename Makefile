# Set-up and checks on a fresh machine: `make run` and `make test` create .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The local CPU build; an unpinned torch would pull several GB of CUDA packages.
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: run test test-slow lint bench gallery synthesis-gallery clean

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

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[bench]"
	$(BIN)/python benchmarks/data.py
	$(BIN)/python benchmarks/classic.py
	$(BIN)/python benchmarks/trainer_overhead.py --threads 1
	$(BIN)/python benchmarks/train_mnist_mlp.py
	$(BIN)/python benchmarks/train_cifar10_schedules.py

gallery: $(STAMP)
	$(BIN)/python docs/gallery.py

synthesis-gallery: $(STAMP)
	$(BIN)/python docs/synthesis.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache runs
