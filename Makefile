# Two commands do all the set-up on a fresh machine:
#   make book   -> HTML book in _build/html
#   make test   -> package tests, strict nbval over every notebook, and the book build with warnings as errors
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
NBVAL  := --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg --nbval-cell-timeout 600

.PHONY: book test test-package test-notebooks test-mutants mutants notebooks bench clean test-browser readme

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . -W -n --keep-going

test: test-package test-mutants test-notebooks book test-browser

test-package: $(STAMP)
	$(BIN)/python -m pytest tests -q

# The mutation gate: plants curated plausible bugs (tests/mutants/*.py) one at a time and fails if the
# tests miss any. `make test` runs the fast subset; `make mutants` all of them (under 10 minutes).
test-mutants: $(STAMP)
	$(BIN)/python scripts/mutants.py --fast

mutants: $(STAMP)
	$(BIN)/python scripts/mutants.py

test-notebooks: $(STAMP)
	$(BIN)/python -m pytest $(NBVAL) notebooks -q

# The built book in headless Chromium (Debian's `chromium`; Playwright's Python package drives it),
# served on 127.0.0.1 with every other host blocked; plus the API page's coverage of vitlearn's names.
CHROMIUM ?= $(shell command -v chromium || echo /usr/bin/chromium)
test-browser: book
	@if [ -x "$(CHROMIUM)" ]; then \
	  VITLEARN_BROWSER_TEST=1 CHROMIUM="$(CHROMIUM)" $(BIN)/python -m pytest tests/browser -q -rs; \
	else \
	  echo "*** Browser test SKIPPED: Chromium not found ($(CHROMIUM))."; \
	  echo "*** Install it with: sudo apt-get install -y chromium   (then: make test-browser)"; \
	  VITLEARN_BROWSER_TEST=1 CHROMIUM="$(CHROMIUM)" $(BIN)/python -m pytest tests/browser -q -rs; \
	fi

# Rewrite README's install line and badges from _config.yml's repository.url.
readme: $(STAMP)
	$(BIN)/python scripts/sync_readme.py

# Re-execute every notebook top to bottom in a fresh kernel and store its outputs.
notebooks: $(STAMP)
	$(BIN)/python scripts/execute_notebooks.py notebooks/*.ipynb

bench: $(STAMP)
	$(BIN)/python benchmarks/throughput.py

clean:
	rm -rf _build
