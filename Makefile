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

.PHONY: demo test bench quality venv dev clean help chromium slurm

help:
	@echo "make demo   - render configs/quickstart.yaml on the embedded EfficientNet-Lite0 into $(OUT)"
	@echo "make test   - install the dev extras (and Debian's chromium, SLURM and munge where missing) and run the test suite"
	@echo "make bench  - install torch-lucent 0.1.8 beside featviz and run benchmarks/compare.py (BENCH_ARGS=--quick)"
	@echo "make quality - the image-quality benchmark (Lite0 renders judged by Lite1, the reverse, feature accentuation) into $(QUALITY_OUT)"

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

# The gallery test drives a real headless browser: Debian's chromium, installed where missing
# (as root, or through sudo). Where it cannot be installed the browser test is skipped with the reason.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the gallery's browser test"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; } \
	    || echo "warning: could not install chromium; the browser test will be skipped"; }

# The SLURM test starts a one-node cluster on localhost: Debian's slurmctld, slurmd, slurm-client and
# munge, installed where missing (as root, or through sudo). Where they cannot be installed it is skipped.
SLURM_PKGS := slurmctld slurmd slurm-client munge
slurm:
	@PATH="$$PATH:/usr/sbin:/sbin"; \
	for c in munged slurmctld slurmd sbatch; do command -v $$c >/dev/null 2>&1 || missing=1; done; \
	[ -z "$$missing" ] || { \
	  echo "installing Debian's $(SLURM_PKGS) for the SLURM test"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  { $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(SLURM_PKGS); } \
	    || echo "warning: could not install $(SLURM_PKGS); the SLURM test will be skipped"; }

test: $(DEVSTAMP) chromium slurm
	$(PY) -m pytest

# torch-lucent's declared pins are old: the versions that work with today's torch, without their deps.
$(BENCHSTAMP): pyproject.toml $(STAMP)
	$(PIP) install -q --no-deps 'torch-lucent==0.1.8' 'kornia==0.4.1' decorator ipython traitlets
	@touch $@

bench: $(BENCHSTAMP)
	$(PY) -m benchmarks.compare $(BENCH_ARGS)

# Image quality (not part of `make test`): the defaults before this round against today's, at 128 and
# 512 steps, judged by a network that never rendered; then the reverse direction. About 20 minutes on 2 cores.
QUALITY_OUT ?= out/quality
BEFORE := param.decay_power=1.0 optimizer.lr=0.05
QUALITY_ARGS ?= --setting before_512 steps=512 $(BEFORE) --setting before_128 steps=128 $(BEFORE) \
	--setting now_128 steps=128 --setting now_512 steps=512
quality: $(DEVSTAMP)
	$(PY) -m benchmarks.quality $(QUALITY_ARGS) --objective classes --objective _blocks.10:12 --out $(QUALITY_OUT)/lite0-by-lite1
	$(PY) -m benchmarks.quality $(QUALITY_ARGS) --render-model efficientnet_lite1 --judge efficientnet_lite0 \
	  --out $(QUALITY_OUT)/lite1-by-lite0
	$(PY) -m benchmarks.accentuation --out $(QUALITY_OUT)/accentuation

clean:
	rm -rf out build *.egg-info
