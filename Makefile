# The few targets people type. Each creates .venv and installs what it needs first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck bench soak clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## run the broker on its embedded defaults (a local OpenBao too)
	$(BIN)/grantline serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy src

test: lint typecheck  ## lint, type-check and run the whole test suite
	# The lineage page is tested in Debian's chromium (never a downloaded browser).
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
	GRANTLINE_REQUIRE_BROWSER=1 $(BIN)/pytest

bench: $(STAMP)  ## benchmarks: the broker beside its baselines, in one run (needs wrk)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python bench/bench_policy.py
	$(BIN)/python bench/bench_grants.py
	$(BIN)/python bench/bench_vault.py
	$(BIN)/python bench/bench_approvals.py
	$(BIN)/python bench/bench_append.py
	$(BIN)/python bench/bench_verify.py
	$(BIN)/python bench/bench_export.py
	$(BIN)/python bench/bench_observability.py
	$(BIN)/python bench/bench_usage.py
	$(BIN)/python bench/summary.py

soak: $(STAMP)  ## the fault and attack suites, ten times longer than in CI
	GRANTLINE_TEST_SCALE=$${GRANTLINE_TEST_SCALE:-10} $(BIN)/pytest -m faults

clean:
	rm -rf $(VENV) .grantline .pytest_cache .mypy_cache .ruff_cache
