# The two commands a newcomer needs: `make run` and `make test`. Both build .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The locks pin every package, with hashes, for the service and the dev tools; pyproject.toml
# keeps the ranges library users install from. Regenerate both after changing pyproject.toml,
# with pip-tools installed outside .venv (README, "Set up").
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements-dev.lock | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck check demo bench bench-peers compose-check clean

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

bench: $(STAMP)  ## pipeline vs bare trafilatura, peers (after `make bench-peers`), latency, memory, stages
	$(BIN)/python benchmarks/run_all.py

bench-peers: $(STAMP)  ## newspaper4k and readability-lxml for the peers table, kept out of .venv itself
	$(BIN)/python -m pip install --quiet --target $(VENV)/bench-peers newspaper4k==0.9.6 readability-lxml==0.9

compose-check:
	docker-compose -f docker-compose.yml config --quiet

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
