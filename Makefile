# Two entry points for a fresh clone; both create .venv on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

## demo: set up, then train + evaluate a MASSIVE en-US intent classifier and print its report
demo: $(STAMP)
	$(BIN)/minbert train configs/massive_intent.yaml $(ARGS)

## test: set up, then run the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest $(ARGS)

## lint: ruff (lint + format check) on the code, tests, benchmarks, experiments and docs; mypy on all but the tests
lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks experiments docs
	$(BIN)/ruff format --check src tests benchmarks experiments docs
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs
