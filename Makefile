# The two commands: `make demo` and `make test`. Both create .venv and install what they need.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DEMO_COLLECTION ?= citeqa-docs
PORT   ?= 7860
PYTEST_ARGS ?=

.PHONY: install demo test lint unit bench bench-quick browser clean

$(PY):
	python3 -m venv $(VENV)

# torch first, pinned to the CPU build that lies on this disk; a bare `torch` would pull a CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install -q -U pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,llamacpp]'
	touch $(STAMP)

install: $(STAMP)

# Debian's chromium for the browser tests (Playwright's own browser download does not work offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: install
	$(VENV)/bin/ruff check .

test: install browser lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

unit: install
	$(VENV)/bin/pytest tests/unit -q

demo: install
	$(VENV)/bin/citeqa ingest docs --collection $(DEMO_COLLECTION)
	@echo "citeqa: open http://127.0.0.1:$(PORT) in your browser (Ctrl-C stops the server)"
	$(VENV)/bin/citeqa serve --collection $(DEMO_COLLECTION) --port $(PORT)

bench: install
	$(PY) -m evals.bench --out bench-results

bench-quick: install
	$(PY) -m evals.bench --quick --out bench-results/quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-output
