# The project's commands. `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format bench clean model-venv agents system-packages

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,cli]'
	touch $(STAMP)

install: $(STAMP)

# --- Demo model server (Anthropic/demo helper) ---------------------------------------------
# SmolLM2 served by llama-cpp-python in its own virtualenv: its FastAPI/starlette pins must not
# meet ours. The first build compiles llama.cpp (~10 min on 2 cores) into a wheel cache that
# later builds reuse; see the script for why.
MODEL_VENV ?= .venv-model
MODEL_STAMP := $(MODEL_VENV)/.installed
LLAMA_CPP_VERSION := 0.3.36
SMOLLM2_VERSION := 0.1.2

$(MODEL_STAMP): scripts/build_model_venv.sh
	bash scripts/build_model_venv.sh $(PYTHON) $(MODEL_VENV) $(LLAMA_CPP_VERSION) $(SMOLLM2_VERSION)
	touch $(MODEL_STAMP)

model-venv: $(MODEL_STAMP)

# --- Coding agents (tests/agents) ----------------------------------------------------------
# Codex CLI, Claude Code and OpenCode from npm, at the versions of tests/agents/package-lock.json,
# into tests/agents/node_modules; reinstalled only when the lock changes. Without node/npm it
# says so and the agent tests skip.
agents: $(STAMP)
	$(PY) -m tests.agents.install

# Debian packages tests start for real (nginx); installed only when missing.
system-packages:
	sh scripts/system_packages.sh

test: $(STAMP) agents system-packages
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy inference_gateway resource_server_async compute_functions igw

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

demo: $(STAMP) $(MODEL_STAMP)
	$(PY) -m scripts.demo

bench: $(STAMP)
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(MODEL_VENV) var build *.egg-info .pytest_cache .mypy_cache .ruff_cache
