# The two commands a newcomer needs: `make run` and `make test`. Both build .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The locks pin every package, with hashes, for the service and the dev tools; pyproject.toml
# keeps the ranges library users install from. Regenerate both after changing pyproject.toml,
# with pip-tools installed outside .venv (README, "Set up").
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements-dev.lock | cksum | cut -d' ' -f1)
# The benchmark's peers, pinned; apart from .venv's own packages (see pyproject.toml).
PEERS := newspaper4k==0.9.6 readability-lxml==0.9
PEERS_DIR := $(VENV)/bench-peers
PEERS_STAMP := $(PEERS_DIR)/.installed-$(shell echo '$(PEERS)' | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck check demo bench bench-peers reliability-report compose-check clean

$(STAMP): pyproject.toml requirements-dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)  ## start poller, workers and health server (embedded Redis unless TRADEWIRE_REDIS_URL is set)
	$(BIN)/tradewire run

demo: $(STAMP)  ## the whole pipeline offline against a bundled local news site
	$(BIN)/tradewire demo

test: $(STAMP)  ## the whole test suite against private redis-server and local HTTP servers
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff format --check core service workers tests benchmarks
	$(BIN)/ruff check core service workers tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/vulture

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

bench: $(STAMP) $(PEERS_STAMP)  ## pipeline vs bare trafilatura and the peers, latency, memory, stages; writes benchmarks/results/latest.*
	$(BIN)/python benchmarks/run_all.py

bench-peers: $(PEERS_STAMP)  ## newspaper4k and readability-lxml for the peers table, kept out of .venv itself

# A fresh directory each time: `pip install --target` over an older install leaves both.
$(PEERS_STAMP): | $(STAMP)
	rm -rf $(PEERS_DIR)
	$(BIN)/python -m pip install --quiet --target $(PEERS_DIR) $(PEERS)
	touch $@

reliability-report: $(STAMP)  ## run tests/reliability and rewrite docs/reliability.md from it
	TRADEWIRE_RELIABILITY_REPORT=1 $(BIN)/python -m pytest -q tests/reliability

compose-check:
	docker-compose -f docker-compose.yml config --quiet

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
