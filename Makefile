# Two commands for a newcomer: `make dev` (set up and run) and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: dev test test-slow lint unit install clean

# Some environments set PYTHONDONTWRITEBYTECODE=1; then every test process and every worker the
# tests start compiles the whole project again (pytest's assertion rewriting too): seconds each.
unexport PYTHONDONTWRITEBYTECODE

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/core dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports  # the layer contract (.importlinter, docs/decisions.md D190)

# The unit tests: fakes only, no PostgreSQL, Redis or Kafka; under 10 s. Without the plugins they do
# not need (schemathesis, hypothesis's reporting, the last-failed cache: two seconds of start-up);
# hypothesis itself still runs the property tests.
unit: $(STAMP)
	$(BIN)/pytest tests/unit -q -p no:schemathesis -p no:hypothesispytest -p no:cacheprovider

# Test files spread over two processes, each with its own broker, database and workers (D204).
test: lint
	$(BIN)/pytest -q -ra --durations=15 -n 2 --dist loadfile

# The multi-worker scenarios that take minutes (rebalances under load); not in CI, results in docs/.
test-slow: $(STAMP)
	$(BIN)/pytest -q -ra -s -m slow

clean:
	rm -rf $(VENV) var test-artifacts .pytest_cache
