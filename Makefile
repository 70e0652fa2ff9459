# The project's commands. `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format bench clean model-venv agents dashboard-assets system-packages lock

# Installs exactly the locked versions, each checked against its hash (requirements/dev.txt:
# server, cli and dev; requirements/server.txt: the server alone, for images), then the
# project itself without resolving anything again.
LOCK := requirements/dev.txt
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Re-resolve the lock after a change to pyproject.toml's dependencies: uv keeps every pin it
# can (UPGRADE=--upgrade moves them all to the newest allowed). One resolution for every
# platform and Python >= 3.11 (--universal); uv runs from a throw-away venv.
UV_VENV ?= /tmp/igw-uv
UV_VERSION := 0.13.9
lock:
	test -x $(UV_VENV)/bin/uv || ($(PYTHON) -m venv $(UV_VENV) && \
		$(UV_VENV)/bin/pip install --quiet 'uv==$(UV_VERSION)')
	$(UV_VENV)/bin/uv pip compile pyproject.toml --extra dev --extra cli --generate-hashes \
		--universal --python-version 3.11 --custom-compile-command "make lock" $(UPGRADE) \
		-q -o requirements/dev.txt
	$(UV_VENV)/bin/uv pip compile pyproject.toml --generate-hashes \
		--universal --python-version 3.11 --custom-compile-command "make lock" $(UPGRADE) \
		-q -o requirements/server.txt

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

# --- Operator dashboard: Chart.js from npm (resource_server_async/dashboard/assets) -----------
dashboard-assets: $(STAMP)
	$(PY) -m resource_server_async.dashboard.assets

# --- Debian packages the tests need (chromium: dashboard; nginx-light: deploy), when missing ----
system-packages:
	bash scripts/system_packages.sh

test: $(STAMP) agents dashboard-assets system-packages
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy inference_gateway resource_server_async compute_functions igw

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

demo: $(STAMP) $(MODEL_STAMP) dashboard-assets
	$(PY) -m scripts.demo

bench: $(STAMP)
	$(PY) -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(MODEL_VENV) var build *.egg-info .pytest_cache .mypy_cache .ruff_cache
