# Safra: the two commands are `make demo` and `make test`. Everything else is a step of theirs.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed
AIRFLOW_VENV := .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed
DEMO_SCALE ?= full

.PHONY: demo test install airflow env prereqs stack-up stack-down stack-status smoke test-unit \
        test-integration lint lint-sql lock lock-airflow bench bench-stack clean-data

## demo: install everything, bring the local stack (and Airflow) up, run the smoke flow, then the
## whole loop (`safra demo`): history -> lakehouse -> features -> champion -> API -> drift ->
## retraining -> promotion, the API switching versions under load
demo: install airflow
	$(BIN)/safra stack up --with airflow
	$(BIN)/safra stack smoke
	$(BIN)/safra demo --scale $(DEMO_SCALE)
	@echo "The stack keeps running: '$(BIN)/safra stack status' shows it; 'make stack-down' stops it."

## test: install (Airflow too: the DAG tests run dag.test()), then unit, integration and e2e tests
## on the tests' own stack (.safra-test/, ports + 20000; started fresh by the tests, stopped at
## the end). The user's stack is never touched: tests.user_world checks it before and after.
TEST_WORLD := .safra-test/user-world-before.json
test: install airflow
	@$(BIN)/python -m tests.own_stack reset
	@$(BIN)/python -m tests.user_world save $(TEST_WORLD)
	@status=0; $(BIN)/python -m pytest tests/unit tests/integration tests/e2e || status=$$?; \
	  $(BIN)/python -m tests.own_stack down; \
	  $(BIN)/python -m tests.user_world compare $(TEST_WORLD) || status=1; \
	  exit $$status

install: $(STAMP) .env

$(STAMP): requirements.lock pyproject.toml
	@bash scripts/prereqs.sh
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	@echo "installing the locked Python dependencies into $(VENV) (first run builds pyspark: minutes)"
	$(BIN)/uv pip sync --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	@touch $(STAMP)

## airflow: Airflow 3 in its own venv from requirements-airflow.lock (its pins fight the main
## env's fastapi); `safra stack up --with airflow` runs it, its tasks call .venv/bin/safra
airflow: $(AIRFLOW_STAMP)

$(AIRFLOW_STAMP): requirements-airflow.lock | $(STAMP)
	@test -x $(AIRFLOW_VENV)/bin/python || $(BIN)/uv venv -q --python $(PYTHON) $(AIRFLOW_VENV)
	$(BIN)/uv pip sync --python $(AIRFLOW_VENV)/bin/python requirements-airflow.lock
	@touch $(AIRFLOW_STAMP)

## env: a git-ignored .env with generated secrets (kept if present)
.env: .env.example | $(STAMP)
	$(BIN)/safra env
env: .env

prereqs:
	@bash scripts/prereqs.sh

stack-up: install
	$(BIN)/safra stack up
stack-down:
	$(BIN)/safra stack down
stack-status:
	$(BIN)/safra stack status
smoke: install
	$(BIN)/safra stack smoke

test-unit: install airflow
	$(BIN)/python -m pytest tests/unit
test-integration: install airflow
	$(BIN)/python -m pytest tests/integration

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(MAKE) lint-sql

## lint-sql: sqlfluff over the dbt models, with no services and no settings needed (.sqlfluff says
## how); a macro file alone renders no SQL to lint
lint-sql: install
	$(BIN)/sqlfluff lint dbt/models

## lock: re-resolve requirements.in into requirements.lock
lock:
	$(BIN)/uv pip compile requirements.in -o requirements.lock --python-version 3.11
lock-airflow:
	$(BIN)/uv pip compile requirements-airflow.in -o requirements-airflow.lock --python-version 3.11

## bench: the scoring API benchmark on the running stack (`safra stack up`): vegeta (the load
## generator) is built first into the download cache (SAFRA_CACHE_DIR, from the Go module proxy;
## skipped when there), then bench/serving_bench.py prints its JSON; BENCH_ARGS passes options
## (e.g. BENCH_ARGS="--rates 200 --no-saturation --skip-mlflow")
bench: install
	$(BIN)/python bench/serving_bench.py --build-vegeta
	$(BIN)/python bench/serving_bench.py $(BENCH_ARGS)

## bench-stack: stack start-up times and memory (a fresh clone on offset ports)
bench-stack: install
	$(BIN)/python bench/stack_bench.py

## clean-data: stop the stack and delete its data (not the download cache)
clean-data: stack-down
	rm -rf .safra
