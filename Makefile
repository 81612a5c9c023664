# One-command entry points for a fresh machine (see README.md and CONTRIBUTING.md).
PYTHON ?= python3
VENV ?= .venv
# The CPU build of torch is installed first so that the package's torch range does not pull a CUDA build.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
BIN := $(VENV)/bin
# One thread per BLAS library: the tests and benchmarks measure one-thread runs on a shared 2-core machine.
THREADS := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
# The checked code: the library, its tests and the docs build (benchmarks are scripts, checked by hand).
SRC := qlandscape tests docs

.PHONY: setup demo test test-slow bench lint format-check format typecheck contracts check docs docs-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/qlandscape --threads 1 run benchmarks/demo.toml --out runs/demo

test: setup
	$(THREADS) $(BIN)/python -m pytest -q

test-slow: setup
	$(THREADS) $(BIN)/python -m pytest -q -m slow

# The engine against PennyLane, quick subset (~3 min); results go to runs/bench, not over the committed ones.
bench: setup
	$(THREADS) $(BIN)/python benchmarks/perf/run_perf.py --quick --out runs/bench

# --- checks (each one its own target; `make check` runs them all, `make -k check` reports every failure) ---

lint: setup
	$(BIN)/ruff check $(SRC)

format-check: setup
	$(BIN)/ruff format --check $(SRC)

# Rewrites files: ruff's formatting and the fixes ruff marks safe.
format: setup
	$(BIN)/ruff format $(SRC)
	$(BIN)/ruff check --fix $(SRC)

# Which packages mypy checks is set in pyproject.toml ([tool.mypy] files).
typecheck: setup
	$(BIN)/mypy

# The import contracts of pyproject.toml ([tool.importlinter]): layers, no cycles, plots draw results only.
contracts: setup
	$(BIN)/lint-imports

check: lint format-check typecheck contracts docs-check test

# API reference from the docstrings (docs/build_api.py runs pdoc), into docs/api (not committed). The build fails on
# any pdoc warning and on any reference to a qlandscape name, in a docstring or a Markdown page, that does not
# resolve or names an internal object.
docs: setup
	rm -rf docs/api
	$(BIN)/python docs/build_api.py --out docs/api

# The same build and checks, rendered into a temporary folder (what `make check` and CI run; about 6 s).
docs-check: setup
	$(BIN)/python docs/build_api.py --check-only

clean:
	rm -rf $(VENV) runs docs/api
