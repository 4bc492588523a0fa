# Time Machine: `make run` serves, `make test` proves it. `make help` lists the rest.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -ec
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BUF := $(VENV)/bin/buf

export TM_GRPC_ADDRESS ?= 127.0.0.1:50051
export TM_DATA_DIR ?= .data

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	@echo "==> creating virtualenv in $(VENV) and installing pinned dependencies"
	@test -x $(PY) || $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "make needs Python 3.11 or newer as '$(PYTHON)' ($$(command -v $(PYTHON) >/dev/null && $(PYTHON) --version 2>&1 || echo not found)): install one, or name it: make PYTHON=python3.12 ..." >&2; \
		exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt 2>&1 | { grep -v '^WARNING: Location' || true; }
	@touch $@

venv: $(STAMP) ## Create the virtualenv with pinned dependencies

proto: $(STAMP) ## Regenerate generated/ from proto/
	@$(PY) scripts/gen_proto.py generated

proto-check: $(STAMP) ## Fail if generated/ is not what proto/ produces
	@$(PY) scripts/gen_proto.py --check generated

run: proto-check ## Start embedded PostgreSQL and S3 (unless configured), migrate, serve
	@TM_LOG_FORMAT=$${TM_LOG_FORMAT:-text} exec $(PY) -m server  # text for people; JSON is the service default

migrate: proto-check ## Apply migrations to the configured (or embedded) database
	@$(PY) -m server --migrate-only

test: proto-check ## Run every test against real PostgreSQL, S3 and gRPC
	@$(PY) -m pytest

fuzz: proto-check ## Hostile requests for every RPC and random histories against the model, many more examples than make test
	@TM_FUZZ_RANDOM=1 TM_FUZZ_EXAMPLES=$${TM_FUZZ_EXAMPLES:-500} $(PY) -m pytest tests/test_fuzz.py tests/test_model.py -p no:cacheprovider

bench: proto-check ## Run the benchmarks; writes bench/results.json
	@$(PY) -m bench

lint: $(STAMP) ## ruff, mypy, buf lint and hadolint
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy
	@cd proto && ../$(BUF) lint
	@$(VENV)/bin/hadolint Dockerfile

clean: ## Remove the virtualenv (data in TM_DATA_DIR is kept)
	rm -rf $(VENV) node_modules tests/node/node_modules

.PHONY: help venv proto proto-check run migrate test fuzz bench lint clean
