# survlab — install, demo, test. torch is installed pinned FIRST so pip never resolves an unpinned
# (CUDA, several GB) torch as a dependency of lightning/torchsurv.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_PIN ?= torch==2.13.0
# the exact tested set (pyproject.toml holds ranges); `make lock` regenerates it from $(VENV)
CONSTRAINTS ?= requirements/constraints.txt
export WANDB_MODE ?= offline
export HF_HUB_OFFLINE = 1

.PHONY: install demo test test-e2e test-all lint bench clean lock

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c $(CONSTRAINTS) "$(TORCH_PIN)"
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[test,text]"
	@touch $@

install: $(VENV)/.installed

## Train + test the default model on the embedded synthetic cohort (timings: experiments/timings/README.md).
demo: install
	$(PY) -m survlab.run experiment=demo

## Unit tests + doctests (CPU only, a few minutes on 2 cores). End-to-end tests (tests/e2e/ and tests marked slow:
## CLI subprocesses, sweeps, DDP simulation, learning, pipelines): make test-e2e; both: make test-all.
test: install
	WANDB_MODE=disabled OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2

test-e2e: install
	WANDB_MODE=disabled OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 -m slow tests --durations=25

test-all: install
	WANDB_MODE=disabled OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 -m "slow or not slow"

## Speed benchmark: survlab vs the papers' usual loop and the bandwidth floor (TCGA scale by default; hours on a
## CPU: e.g. make bench BENCH_ARGS="--patients 200 --patches 2000"). Results: experiments/speed/latest/.
bench: install
	$(PY) benchmarks/bench.py $(BENCH_ARGS)

## ruff check, ruff format --check and mypy (config: pyproject.toml); the same hooks run in pre-commit
## (.pre-commit-config.yaml; `$(VENV)/bin/pre-commit install` once).
lint: install
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[dev]"
	$(VENV)/bin/ruff check survlab tests benchmarks scripts
	$(VENV)/bin/ruff format --check survlab tests benchmarks scripts
	$(VENV)/bin/mypy

## Rewrite $(CONSTRAINTS) from what $(VENV) holds now (after upgrading packages there and running the tests):
## pip freeze without survlab itself / editable installs, torch without its local build label (+cpu / +cuXXX).
lock:
	@test -x $(PY) || { echo "make lock: no $(PY); run make install first"; exit 1; }
	@mkdir -p $(dir $(CONSTRAINTS))
	@{ echo "# The exact tested set (pip freeze of the development venv; survlab itself and editable installs left out)."; \
	   echo "# make install installs with -c requirements/constraints.txt; make lock regenerates this file from the venv."; \
	   echo "# torch carries no local build label (+cpu / +cu12x): the same file serves CPU and CUDA wheels of that version."; \
	   $(PIP) freeze --exclude-editable | grep -v -i -E '^(#|-e |survlab( |==|@))' | sed -E 's/^(torch==[^+]+)\+.*/\1/'; \
	 } > $(CONSTRAINTS).tmp && mv $(CONSTRAINTS).tmp $(CONSTRAINTS)
	@echo "wrote $(CONSTRAINTS) ($$(grep -vc '^#' $(CONSTRAINTS)) packages)"

clean:
	rm -rf outputs multirun logs wandb .pytest_cache .ruff_cache build *.egg-info
