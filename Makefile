# The two commands: `make repro` runs the pipeline, `make test` runs the tests.
# Both create .venv and install the project into it when needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MUSICLUST_OFFLINE := 1
export OMP_NUM_THREADS ?= 2

.PHONY: install repro test test-fast lint clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

repro: install
	$(BIN)/dvc config --local core.analytics false 2>/dev/null || true
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro

test: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q

test-fast: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check src stages tests

clean-venv:
	rm -rf $(VENV)
