# casebridge: every command a user needs. `make demo` and `make test` install what they need by themselves.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Checkov has many dependencies of its own: its own virtualenv, on a Python it is released for.
CHECKOV_PYTHON ?= $(shell for p in python3.12 python3.11 python3.13 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1
PYTEST_ARGS ?=
ARGS ?=

.PHONY: help venv test lint typecheck template-check checkov browser unit demo local screenshots bench bench-layers lock fuzz simulate build deploy invoke start-api clean

# Every rule is listed, with its "## " comment when it has one (a rule added without one still shows up).
help: ## list the targets
	@awk '/^[a-z][a-z0-9_-]*:([^=]|$$)/ { name = $$1; sub(/:.*/, "", name); desc = ""; \
		if (index($$0, "## ")) { desc = substr($$0, index($$0, "## ") + 3) }; printf "  %-16s %s\n", name, desc }' $(MAKEFILE_LIST)

# The layer's pins (layers/common/requirements.lock) constrain the venv too: the tests run the versions that ship.
$(STAMP): requirements-dev.txt layers/common/requirements.txt layers/common/requirements.lock
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is needed (python3.11, python3.12 or python3.13 on PATH)"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -c layers/common/requirements.lock
	@touch $(STAMP)

venv: $(STAMP) ## create .venv and install everything

test: $(STAMP) lint typecheck template-check unit ## ruff, mypy, template checks and the whole pytest suite

lint: $(STAMP) ## ruff check and ruff format --check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy (strict) on the layer, the functions, the emulator, scripts and tests
	$(BIN)/mypy layers/common functions emulator scripts tests

template-check: $(STAMP) checkov ## cfn-lint, sam validate --lint and checkov on template.yaml
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint --template template.yaml

$(CHECKOV_STAMP): requirements-checkov.txt
	@test -n "$(CHECKOV_PYTHON)" || { echo "Python 3.11+ is needed for checkov (python3.11 or python3.12 on PATH)"; exit 1; }
	@test -x $(CHECKOV_VENV)/bin/python || $(CHECKOV_PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	@touch $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP) ## checkov on template.yaml, offline (each skipped check gives its reason in the template)
	$(CHECKOV_VENV)/bin/checkov --skip-download --framework cloudformation -f template.yaml --compact --quiet

# The browser tests (tests/browser) drive the distribution's Chromium through Playwright: no browser download.
# As root (CI) a missing Chromium is installed with apt-get; otherwise this stops with the command to run.
HAVE_CHROMIUM = command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || test -x "$${CHROMIUM:-/nonexistent}"
browser: ## the system Chromium the browser tests drive (apt-get install chromium when missing and root)
	@$(HAVE_CHROMIUM) || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing Debian's chromium for the browser tests"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null; \
		else \
			echo "The browser tests need Chromium: sudo apt-get install chromium (or set CHROMIUM=/path/to/chrome)"; exit 1; \
		fi; }
	@$(HAVE_CHROMIUM) || { echo "Chromium is still missing: the browser tests cannot run"; exit 1; }

unit: $(STAMP) browser ## the pytest suite only (PYTEST_ARGS="..." passes options)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

demo: $(STAMP) ## run a whole case end to end, offline (local 8x8 emulator + local AWS stand-in); API=chat-api-v2 for v2
	$(BIN)/python -m scripts.demo $(if $(API),--api $(API))

# exec: the stack is make's own child and stops when make goes (make forwards no SIGTERM to its recipe).
local: $(STAMP) ## start the local stack and leave it running; options: make local ARGS="--api-port 9000 ..." API=chat-api-v2
	exec $(BIN)/python -m scripts.local_stack $(strip $(if $(API),--api $(API)) $(ARGS))

bench: $(STAMP) bench-layers ## print the benchmark figures (docs/performance.md)
	$(BIN)/python -m scripts.bench $(ARGS)

lock: $(STAMP) ## re-resolve layers/common/requirements.lock (keeps pins; ARGS=--upgrade for new versions)
	$(BIN)/python -m scripts.lock_layer $(ARGS)

screenshots: $(STAMP) browser ## docs/img/*.png of the customer chat page and the agent desk, in headless Chromium
	$(BIN)/python -m scripts.screenshots

fuzz: $(STAMP) ## long fuzz run of the webhook intake
	FUZZ_EXAMPLES=100000 $(BIN)/python -m pytest tests/fuzz -m slow -p no:randomly -q

# The deterministic simulation of the whole connector (tests/simulation): SEEDS histories from seed 0; SEED=n replays
# one step by step; CASES=n sizes the world (CASES=10000 is the scale run and prints the capacity figures).
SEEDS ?= 10000
simulate: $(STAMP) ## simulate the whole connector under faults (SEEDS=n, SEED=n replays one, CASES=n sizes the world)
	PYTHONPATH=layers/common:. $(BIN)/python -m tests.simulation --seeds $(SEEDS) $(if $(SEED),--seed $(SEED)) $(if $(CASES),--cases $(CASES))

# sam build needs a Python 3.13 (the functions' runtime) that actually runs: `python3.13` may be a pyenv shim
# with no 3.13 active, so an installed pyenv 3.13 is tried too, and its real directory goes first on PATH.
# The layer's own build (layers/common/Makefile) compiles its bytecode with the same interpreter (PYTHON313).
FIND_PYTHON313 = for p in python3.13 $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13; do \
		"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13); print(sys.executable)' 2>/dev/null && break; done
NO_PYTHON313 = { echo "this needs Python 3.13, the functions' runtime, and none runs here."; \
		echo "  with pyenv:  pyenv install 3.13   (no need to activate it; make finds it), then run make again"; \
		echo "  or install python3.13 from your OS packages"; \
		echo "  or build in Docker:  $(BIN)/sam build --use-container"; exit 1; }
build: $(STAMP) ## sam build (finds a Python 3.13, or says how to get one)
	@py="$$($(FIND_PYTHON313))"; [ -n "$$py" ] || $(NO_PYTHON313); \
	echo "sam build with $$py"; \
	PATH="$$(dirname "$$py"):$$PATH" PYTHON313="$$py" $(BIN)/sam build

# The bench imports the layer as it ships, so it builds it with the recipe sam build runs (layers/common/Makefile):
# for arm64 (the size that ships) and for this machine (to import it). Rebuilt only when the lock, the recipe or
# the package change, so a second `make bench` runs offline.
BENCH_LAYERS := .aws-sam/bench
LAYER_INPUTS := layers/common/Makefile layers/common/requirements.lock $(shell find layers/common/casebridge -name '*.py')
$(BENCH_LAYERS)/.built: $(LAYER_INPUTS)
	@py="$$($(FIND_PYTHON313))"; [ -n "$$py" ] || $(NO_PYTHON313); \
	for platform in manylinux2014_aarch64 manylinux2014_$$(uname -m); do \
		$(MAKE) --no-print-directory -s -C layers/common build-CommonLayer PYTHON313="$$py" LAYER_PLATFORM=$$platform \
			ARTIFACTS_DIR="$(CURDIR)/$(BENCH_LAYERS)/$$platform" || exit 1; \
	done
	@touch $@

bench-layers: $(BENCH_LAYERS)/.built ## build the layer for the bench (arm64 and this machine) as sam build does

deploy: $(STAMP) ## check AWS credentials, ask only what has no default (checked at the prompt), sam build, sam deploy
	$(BIN)/python -m scripts.deploy $(ARGS)

# sam local needs Docker. The environment file is the one of the 8x8 API chosen (API=..., the Gateway by default).
SAM_ENV = events/env.$(or $(API),chat-gateway-v1).json
invoke: build ## sam local invoke (Docker): FUNCTION=WebhookIntakeFunction EVENT=events/chat-gateway-v1/webhook_verify.json [API=chat-api-v2]
	@test -n "$(FUNCTION)" -a -n "$(EVENT)" || { echo "say which: make invoke FUNCTION=<logical id> EVENT=events/<file>.json"; exit 2; }
	$(BIN)/sam local invoke $(FUNCTION) -e $(EVENT) --env-vars $(SAM_ENV)

start-api: build ## sam local start-api (Docker) with events/env.<API>.json
	$(BIN)/sam local start-api --env-vars $(SAM_ENV)

clean: ## remove build output and tool caches
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
