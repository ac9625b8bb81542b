# Two commands for a fresh machine: `make demo` and `make test`. Both create .venv and install
# hwnas into it; the install step re-runs only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.hwnas-installed

.PHONY: install test test-all demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU wheel is on disk here; anything else pulls GBs of CUDA packages
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,dask,peers]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)   # the default tests and the slow ones (not the benchmarks)
	$(BIN)/python -m pytest -q -m 'not bench'

demo: $(STAMP)
	$(BIN)/python -m hwnas.demo

bench: $(STAMP)
	$(BIN)/python -m pytest -q -m bench -s

clean:
	rm -rf $(VENV) demo-out .pytest_cache
