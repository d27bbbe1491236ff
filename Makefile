# Two entry points for a fresh clone; both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint clean

# The demo needs minbert alone; the tests and lint need the test extra (reference libraries, servers, linters).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

$(STAMP)-test: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)-test

## demo: set up, then train + evaluate a MASSIVE en-US intent classifier and print its report
demo: $(STAMP)
	$(BIN)/minbert train configs/massive_intent.yaml $(ARGS)

## test: set up, then run the whole test suite
test: $(STAMP)-test
	$(BIN)/python -m pytest $(ARGS)

## lint: ruff (lint + format check) on the code, tests, benchmarks, experiments and docs; mypy on all but the tests
lint: $(STAMP)-test
	$(BIN)/ruff check src tests benchmarks experiments docs
	$(BIN)/ruff format --check src tests benchmarks experiments docs
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs
