# Everything a fresh machine needs is set up here: `make demo` and `make test` work from a clean clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup graphviz chromium tex demo pictures lecture test test-fast conformance bench lint docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) graphviz

# $(call need,CHECK,PACKAGE,HINT,APT_OPTIONS): when CHECK fails, apt-get install PACKAGE if we are root, else say how.
need = @$(1) >/dev/null 2>&1 || { \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing $(2)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(4) $(2) >/dev/null; \
	else \
	  echo "$(2) is missing: install it with 'sudo apt-get install $(2)'$(3)" >&2; exit 1; \
	fi; }

# Graphviz's `dot` draws the diagrams; Chromium runs the interactive page in the tests.
graphviz:
	$(call need,command -v dot,graphviz, or 'brew install graphviz')

chromium:
	$(call need,test -x /usr/bin/chromium,chromium)

# pdflatex compiles `render -f tex` output in the tests (TikZ, Beamer, xcolor: no fonts beyond TeX's own).
tex:
	$(call need,command -v pdflatex,texlive-latex-base texlive-pictures texlive-latex-recommended,,--no-install-recommends)

# The lecture's example: its table, its diagram as SVG, and its build-up as PDF frames (one multi-page PDF too).
demo: setup
	$(BIN)/cgtools run examples/affine_square.json
	mkdir -p demo
	$(BIN)/cgtools render examples/affine_square.json -o demo/affine_square.svg
	$(BIN)/cgtools render examples/affine_square.json -f pdf --frames demo/frames
	$(BIN)/cgtools render examples/affine_square.json -o demo/affine_square.html

# The pictures the README shows.
pictures: setup chromium tex
	$(call need,command -v pdftoppm,poppler-utils,,--no-install-recommends)
	mkdir -p demo
	$(BIN)/cgtools render examples/affine_square.json -o demo/affine_square.tex
	cd demo && pdflatex -interaction=nonstopmode -halt-on-error affine_square.tex >/dev/null
	pdftoppm -png -r 150 -singlefile demo/affine_square.pdf docs/affine_square_tex
	$(BIN)/cgtools render examples/affine_square.json -o docs/affine_square.png
	$(BIN)/cgtools render examples/square_times_3x.json -o docs/square_times_3x.png
	mkdir -p docs/gallery
	for graph in examples/*.json; do $(BIN)/cgtools render $$graph -o docs/gallery/$$(basename $$graph .json).png; done
	$(BIN)/cgtools render examples/mlp_xent.json --rankdir TB -o docs/mlp_xent.png
	$(BIN)/cgtools render examples/affine_square.json -f png --frames docs/frames
	$(BIN)/cgtools render examples/affine_square.json --show values,grads,chain -f png --frames docs/chain_frames
	$(BIN)/cgtools render examples/mlp_xent.json --rankdir TB -o demo/mlp_xent.html
	$(BIN)/python docs/screenshot.py demo/mlp_xent.html docs/mlp_xent_html.png --hover h --height 900

# Every graph of the lecture, with the commands that make them: docs/lecture/README.md.
lecture: setup tex
	$(BIN)/python docs/lecture.py docs/lecture

test: setup chromium tex
	$(BIN)/python -m pytest -q

# The edit-test loop: everything but the browser and the slow tests (real processes, large models).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not browser and not slow"

# The ONNX backend node suite, regenerated from the onnx wheel: pass/fail per op type and the totals.
conformance: setup
	$(BIN)/python -m cgtools.onnx.conformance

# Every benchmark against its peers, then one table of all the figures (about 20 minutes; run it on a quiet machine).
bench: setup
	$(BIN)/python bench/summary.py

docs: $(STAMP)
	$(BIN)/cgtools schema --markdown > docs/format.md

lint: setup
	$(BIN)/ruff check cgtools cli tests bench

clean:
	rm -rf $(VENV) build dist *.egg-info demo
