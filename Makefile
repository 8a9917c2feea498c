# The two commands of the README. Both create the environment themselves on a fresh machine.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
SUITE ?= quick
SEEDS ?= 2
BUDGET ?= 10

.PHONY: run test lint install

run: $(VENV)/.installed  ## the main job: quick suite into mlflow/, then the matrix into results/
	$(BIN)/bench run --suite $(SUITE) --seeds $(SEEDS) --budget $(BUDGET)
	$(BIN)/bench matrix

test: $(VENV)/.installed  ## the tests (a few minutes on 2 cores)
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed
	$(BIN)/ruff check .

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[test,deploy]"
	touch $@
