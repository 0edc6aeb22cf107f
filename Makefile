# Everything a fresh machine needs is set up here: `make demo` and `make test` work from a clean clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup graphviz demo test bench lint docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) graphviz

# Graphviz's `dot` draws the diagrams; install it when we can, otherwise say what to install.
graphviz:
	@command -v dot >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; \
	  else \
	    echo "Graphviz is missing: install it with 'sudo apt-get install graphviz' or 'brew install graphviz'" >&2; exit 1; \
	  fi; }

demo: setup
	$(BIN)/cgtools run examples/affine_square.json

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/bench_interpreter.py

docs: $(STAMP)
	$(BIN)/cgtools schema --markdown > docs/format.md

lint: setup
	$(BIN)/ruff check cgtools cli tests bench

clean:
	rm -rf $(VENV) build dist *.egg-info
