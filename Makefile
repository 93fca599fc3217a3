# featviz: `make demo` renders the quickstart, `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DEVSTAMP := $(VENV)/.installed-dev
OUT    ?= out/quickstart

.PHONY: demo test venv dev clean help

help:
	@echo "make demo   - render configs/quickstart.yaml on the embedded EfficientNet-Lite0 into $(OUT)"
	@echo "make test   - install the dev extras and run the test suite"

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

clean:
	rm -rf out build *.egg-info
