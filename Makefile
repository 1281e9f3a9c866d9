# casebridge: every command a user needs. `make demo` and `make test` install what they need by themselves.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
PYTEST_ARGS ?=

.PHONY: help venv test lint typecheck template-check unit demo local bench fuzz build deploy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt layers/common/requirements.txt
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is needed (python3.11, python3.12 or python3.13 on PATH)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP) ## create .venv and install everything

test: $(STAMP) lint typecheck template-check unit ## ruff, mypy, template checks and the whole pytest suite

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy layers/common functions emulator scripts

template-check: $(STAMP) ## cfn-lint and sam validate --lint on template.yaml
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --template template.yaml

unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP) ## run a whole case end to end, offline (local 8x8 emulator + local AWS stand-in)
	$(BIN)/python -m scripts.demo

local: $(STAMP) ## start the local stack and leave it running
	$(BIN)/python -m scripts.local_stack

bench: $(STAMP) ## print the benchmark figures (docs/performance.md)
	$(BIN)/python -m scripts.bench

fuzz: $(STAMP) ## long fuzz run of the webhook intake
	FUZZ_EXAMPLES=100000 $(BIN)/python -m pytest tests/fuzz -m slow -p no:randomly -q

build: ## sam build (needs python3.13 on PATH, or use: sam build --use-container)
	@command -v python3.13 >/dev/null 2>&1 || { echo "sam build needs python3.13 on PATH (pyenv install 3.13) or run: sam build --use-container"; exit 1; }
	PATH="$$(dirname $$(command -v python3.13)):$$PATH" $(BIN)/sam build

deploy: build ## sam deploy --guided
	$(BIN)/sam deploy --guided

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
