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

.PHONY: install repro test test-fast lint clean-venv plots-template readme-results

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools wheel
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

repro: install
	$(BIN)/dvc config --local core.analytics false 2>/dev/null || true
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/dvc repro

# Copy metrics/results.md (written by the evaluate stage) into README.md's results block, after a
# `dvc repro` whose dvc.lock you commit (tests/test_contract.py keeps the two identical).
readme-results:
	$(PYTHON) -c 'import pathlib, re; r = pathlib.Path("README.md"); t = pathlib.Path("metrics/results.md").read_text(encoding="utf-8"); s = r.read_text(encoding="utf-8"); n = re.sub(r"(<!-- results:start -->\n).*?(<!-- results:end -->)", lambda m: m.group(1) + t + m.group(2), s, count=1, flags=re.S); assert n != s or t in s, "README.md lacks the results block"; r.write_text(n, encoding="utf-8")'

test: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q

test-fast: install
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check src stages tests
	$(BIN)/ruff format --check src stages tests

# Rebuild .dvc/plots/offline.html (the `dvc plots show/diff` page with vega inlined) from npm.
# Pin versions with e.g. `make plots-template VEGA=vega@5.33.1`.
VEGA       ?= vega@5
VEGA_LITE  ?= vega-lite@5
VEGA_EMBED ?= vega-embed@6
plots-template: install
	tmp=$$(mktemp -d) && (cd $$tmp && npm pack --silent $(VEGA) $(VEGA_LITE) $(VEGA_EMBED) >/dev/null) && \
	$(BIN)/musiclust plots-template $$tmp/vega-[0-9]*.tgz $$tmp/vega-lite-*.tgz $$tmp/vega-embed-*.tgz \
	  --out .dvc/plots/offline.html && rm -rf $$tmp

clean-venv:
	rm -rf $(VENV)
