# Two commands set everything up on a fresh machine:
#   make run   install, then start the gateway on the embedded defaults (127.0.0.1:8787)
#   make test  install, start the real test services the suite needs, run the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8787
PYTEST_ARGS ?=

.PHONY: run test install install-dev services lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,aws,gcp,azure,redis]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/skyrelay serve --host $(HOST) --port $(PORT)

# Test services: system packages the suite starts itself on random loopback ports.
services:
	@bash scripts/install-services.sh

test: install-dev services
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check core handlers tests bench
	$(BIN)/mypy

bench: install-dev
	@bash scripts/install-services.sh bench
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
