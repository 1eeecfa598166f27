# car22 — every target sets up .venv from pyproject.toml by itself on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= data/demo
N ?= 2000

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: help setup test demo bench reliability clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)  ## create .venv and install car22 with its test tools

test: setup  ## run the whole test suite
	$(BIN)/pytest

demo: setup  ## fresh demo: generate exports, run the nightly flow, show where everything is
	rm -rf $(DEMO_DIR)
	$(BIN)/car22 demo-data --out $(DEMO_DIR)/inbox
	$(BIN)/car22 ingest --data-dir $(DEMO_DIR)

bench: setup  ## benchmark the nightly run against bare DuckDB: make bench N=2000
	$(BIN)/python bench/run.py --participants $(N)

reliability: setup  ## every kill point, thousands of fuzzed exports, readers under load, resources
	CAR22_KILL_POINTS=all CAR22_FUZZ_EXAMPLES=3000 $(BIN)/pytest tests/test_crash.py \
		tests/validation/test_fuzz.py tests/test_readers.py tests/test_resources.py

clean:  ## remove the venv and generated data
	rm -rf $(VENV) data build *.egg-info
