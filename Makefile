# The two commands of the README. Both create the environment themselves on a fresh machine.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
SUITE ?= quick
SEEDS ?= 2
BUDGET ?= 10

.PHONY: run test lint install

# bench run exits 1 when some job failed: the matrix is still built (failed jobs count in it as the constant
# predictor), then make reports the failure; a usage error (2) or an interrupt (130) stops before the matrix.
run: $(VENV)/.installed  ## the main job: quick suite into mlflow/, then the matrix into results/
	@$(BIN)/bench run --suite $(SUITE) --seeds $(SEEDS) --budget $(BUDGET); status=$$?; \
	if [ $$status -gt 1 ]; then exit $$status; fi; \
	$(BIN)/bench matrix && exit $$status

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
