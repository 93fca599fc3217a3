# featviz: `make demo` renders the quickstart, `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
BENCHSTAMP := $(VENV)/.installed-bench
BENCH_ARGS ?=
OUT    ?= out/quickstart

.PHONY: demo test bench venv dev clean help

help:
	@echo "make demo   - render configs/quickstart.yaml on the embedded EfficientNet-Lite0 into $(OUT)"
	@echo "make test   - install the dev extras and run the test suite"
	@echo "make bench  - install torch-lucent 0.1.8 beside featviz and run benchmarks/compare.py (BENCH_ARGS=--quick)"

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	@touch $@

$(DEVSTAMP): pyproject.toml $(STAMP)
	$(PIP) install -q -e '.[dev]'
	@touch $@

venv: $(STAMP)

dev: $(DEVSTAMP)

demo: $(STAMP)
	$(VENV)/bin/featviz render configs/quickstart.yaml --out $(OUT)
	@echo "Grid: $(OUT)/grid.png  (per-image PNGs and meta.json beside it)"

test: $(DEVSTAMP)
	$(PY) -m pytest

# torch-lucent's declared pins are old: the versions that work with today's torch, without their deps.
$(BENCHSTAMP): pyproject.toml $(STAMP)
	$(PIP) install -q --no-deps 'torch-lucent==0.1.8' 'kornia==0.4.1' decorator ipython traitlets
	@touch $@

bench: $(BENCHSTAMP)
	$(PY) -m benchmarks.compare $(BENCH_ARGS)

clean:
	rm -rf out build *.egg-info
