# kouiki — the verbs people use. Every target bootstraps what it needs (Python 3.11 and make are enough).
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.8
VENV := .venv
UV := .tools/bin/uv
export KOUIKI_HOME ?= $(CURDIR)/.kouiki
export DAGSTER_HOME ?= $(KOUIKI_HOME)/dagster
export KOUIKI_PORT ?= 8000
# Offline-friendly: never phone home.
export DAGSTER_DISABLE_TELEMETRY := 1

.PHONY: run test lint ui portal serve bench test-postgres test-distributed clean help

help:
	@echo "make run   – set up (first time) and run the main job on the embedded default"
	@echo "make test  – set up (first time) and run the test suite (ruff, mypy, import layers, pytest)"
	@echo "make test-postgres – the catalog and Dagster's storage on a throwaway PostgreSQL server"
	@echo "make test-distributed – the demo's steps on two Celery workers through a throwaway Redis broker"
	@echo "make ui    – Dagster UI and daemon for the data office on http://127.0.0.1:3000 (automation on)"
	@echo "make portal – public portal and CKAN API on http://127.0.0.1:$${KOUIKI_PORT:-8000}"
	@echo "make serve – upload service for member cities"
	@echo "make bench – every benchmark in bench/, results in bench/results/"

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The environment is rebuilt from the lock file whenever the lock changes.
$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	UV_PYTHON=$(PYTHON) $(UV) sync --frozen --compile-bytecode --quiet
	touch $@

# The project's own modules are compiled once here: where PYTHONDONTWRITEBYTECODE is set (containers, CI), every
# process would otherwise compile them again (a quarter of a second for each Dagster process and CLI call).
setup: $(VENV)/.synced
	@$(VENV)/bin/python -m compileall -q -j 0 commands recovery kouiki intake expectations warehouse publish assets pipelines \
	  anonymise service portal >/dev/null

run: setup
	$(VENV)/bin/kouiki run

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q -n 2 --dist loadfile

# The PostgreSQL variant: Debian's postgresql (installed when missing; needs root), a throwaway server from
# scripts/postgres.sh on 127.0.0.1, tests/test_postgres.py against it. The server is stopped and its folder
# deleted even when a test fails.
test-postgres: setup
	@if ! scripts/postgres.sh check >/dev/null; then \
	  if [ "$$(id -u)" -ne 0 ]; then echo "PostgreSQL is not installed: sudo apt-get install -y postgresql" >&2; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; \
	fi
	@pg_dir=$$(mktemp -d -t kouiki-pg.XXXXXX); \
	trap 'scripts/postgres.sh stop "$$pg_dir"' EXIT; \
	url=$$(scripts/postgres.sh start "$$pg_dir") && \
	echo "throwaway PostgreSQL server ($$(scripts/postgres.sh check)) on $${url##*@}" && \
	KOUIKI_TEST_PG_URL="$$url" $(VENV)/bin/pytest -q tests/test_postgres.py

# Scale-out (docs/scale-out.md): Debian's redis-server (installed when missing; needs root) as Celery's broker
# from scripts/redis.sh on 127.0.0.1; tests/test_distributed.py starts two Celery workers, runs the demo through
# them and through the in-process executor, and compares. Broker and workers are stopped even when a test fails
# (the workers' process groups are listed in workers.pid for the case where pytest itself is killed).
test-distributed: setup
	@if ! scripts/redis.sh check >/dev/null; then \
	  if [ "$$(id -u)" -ne 0 ]; then echo "Redis is not installed: sudo apt-get install -y redis-server" >&2; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; \
	fi
	@redis_dir=$$(mktemp -d -t kouiki-redis.XXXXXX); \
	trap 'stop_workers "$$redis_dir/workers.pid"; scripts/redis.sh stop "$$redis_dir"' EXIT; \
	stop_workers() { [ -f "$$1" ] || return 0; while read -r pid; do kill -- "-$$pid" 2>/dev/null || true; done <"$$1"; }; \
	url=$$(scripts/redis.sh start "$$redis_dir") && \
	echo "throwaway Redis broker ($$(scripts/redis.sh check | cut -d' ' -f3)) on $${url##*@}" && \
	KOUIKI_TEST_REDIS_URL="$$url" KOUIKI_TEST_WORKER_PIDS="$$redis_dir/workers.pid" \
	  $(VENV)/bin/pytest -q -rA tests/test_distributed.py

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

# dagster dev runs the daemon: sensors and declarative automation take each upload to its release
# (config/automation.yaml); kouiki writes the run queue into $(DAGSTER_HOME)/dagster.yaml first.
ui: setup
	$(VENV)/bin/kouiki ui

portal: setup
	$(VENV)/bin/python -m portal

serve: setup
	$(VENV)/bin/python -m service

bench: setup
	$(VENV)/bin/python bench/run_all.py

clean:
	rm -rf $(KOUIKI_HOME)
