# pgworker developer tasks. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help install test test-unit lint fmt migrate schema demo bench bench-enqueue db-up db-down clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "pgworker needs Python 3.11+ (set PYTHON=python3.11)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install pgworker with its dev and embedded extras

test: $(STAMP) ## Run the tests (PGWORKER_TEST_DSN, else Docker, else the embedded server)
	$(BIN)/pytest

test-unit: $(STAMP) ## Run the unit tests only (no database)
	$(BIN)/pytest tests/unit

lint: $(STAMP) ## ruff check, ruff format --check, mypy --strict on src and bench
	$(BIN)/ruff check src tests migrations bench examples
	$(BIN)/ruff format --check src tests migrations bench examples
	$(BIN)/mypy --strict src/pgworker
	MYPYPATH=src $(BIN)/mypy --strict bench

fmt: $(STAMP) ## Format and autofix with ruff
	$(BIN)/ruff format src tests migrations bench examples
	$(BIN)/ruff check --fix src tests migrations bench examples

migrate: $(STAMP) ## Migrate the configured database (or the embedded one) to head
	$(BIN)/pgworker migrate

schema: $(STAMP) ## Regenerate migrations/schema.sql from a scratch database at head
	$(BIN)/python -m pgworker.migrate dump-schema > migrations/schema.sql.tmp
	mv migrations/schema.sql.tmp migrations/schema.sql

demo: $(STAMP) ## Enqueue a few hundred jobs and run a real worker on them (embedded server)
	$(BIN)/python examples/demo.py

bench: $(STAMP) ## Benchmark suite, ~5 min on the embedded server (ARGS="--quick", "--dsn DSN", see --help)
	$(BIN)/python -m bench $(ARGS)

bench-enqueue: $(STAMP) ## Enqueue throughput only: raw INSERT loop, client.enqueue, enqueue_many (COPY)
	$(BIN)/python -m bench enqueue $(ARGS)

COMPOSE ?= docker compose

db-up: ## Start PostgreSQL 16 in Docker (compose.yaml) on 127.0.0.1:5433 and wait until ready
	$(COMPOSE) up -d --wait db
	@echo "export PGWORKER_DSN=postgresql://pgworker:pgworker@127.0.0.1:5433/pgworker"

db-down: ## Stop the compose services (PostgreSQL, the demo worker); the data volume stays
	$(COMPOSE) down

clean: ## Stop the embedded server, remove build outputs and caches (keeps .pgworker data)
	-test -x $(BIN)/pgworker && $(BIN)/pgworker embedded stop
	rm -rf build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache bench/results
	find . -name __pycache__ -type d -not -path './$(VENV)/*' -prune -exec rm -rf {} +
