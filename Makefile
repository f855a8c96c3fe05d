# Two commands set everything up on a fresh machine:
#   make run   install, then start the gateway on the embedded defaults (127.0.0.1:8787)
#   make test  install, start the real test services the suite needs, run the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8787
PYTEST_ARGS ?=

.PHONY: run test install install-dev install-infra-tools services lint bench bench-logging bench-cold-start audit soak clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,aws,gcp,azure,redis,infra,lambda,gcp-functions,azure-functions]'
	touch $@ $(VENV)/.installed

# checkov validates infra/ offline; it lives in its own venv because its exact pins conflict with ours.
CHECKOV_VERSION ?= 3.3.30
$(VENV)/tools/checkov/bin/checkov: | $(BIN)/python
	$(PYTHON) -m venv $(VENV)/tools/checkov
	$(VENV)/tools/checkov/bin/pip install --quiet --upgrade pip
	$(VENV)/tools/checkov/bin/pip install --quiet 'checkov==$(CHECKOV_VERSION)'

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev
install-infra-tools: $(VENV)/tools/checkov/bin/checkov

run: install
	$(BIN)/skyrelay serve --host $(HOST) --port $(PORT)

# Test services: system packages the suite starts itself on random loopback ports.
services:
	@bash scripts/install-services.sh

test: install-dev install-infra-tools services
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check core handlers tests bench infra
	$(BIN)/mypy
	$(BIN)/mypy infra/aws/skyrelay_infra
	$(BIN)/mypy handlers

bench: install-dev
	@bash scripts/install-services.sh bench
	$(BIN)/python bench/run.py

# What request logging costs the gateway worker, in instructions per request (callgrind; a few minutes).
bench-logging: install-dev
	@bash scripts/install-services.sh bench
	$(BIN)/python bench/logging_cost.py
	$(BIN)/python bench/logging_instructions.py

# Cold start of every entry (Lambda, functions-framework, Azure, container) vs the Portkey node gateway (npm).
bench-cold-start: install-dev
	$(BIN)/python bench/cold_start.py

# pip-audit over the venv; --strict fails on any dependency it could not check (see SECURITY.md). Needs pypi.org.
audit: install-dev
	$(BIN)/pip-audit -l --strict

# The full soak: 1,000 concurrent streaming clients for 60 s against one worker (the suite runs a shorter one).
soak: install-dev
	$(BIN)/python bench/soak.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
