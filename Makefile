# The two commands a newcomer needs: `make demo` and `make test`.
# Both build on `make setup`, which does nothing when everything is in place.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test quick lint typecheck unit broker-stop clean

setup: $(STAMP)
	@$(BIN)/hub broker fetch

$(STAMP): pyproject.toml constraints.txt
	@echo "Creating $(VENV) and installing the hub with its pinned dependencies ..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,confluent,report,spreadsheet]'
	@touch $(STAMP)

demo: setup
	@$(BIN)/hub demo

lint: setup
	$(BIN)/ruff check hub adapters streams tests benchmarks
	$(BIN)/ruff format --check hub adapters streams tests benchmarks
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy --strict

unit: setup
	$(BIN)/pytest

test: lint typecheck unit

# The tests that need no Kafka broker (about a minute): for a quick check while editing.
quick: setup
	$(BIN)/pytest -m "not broker"

broker-stop:
	-@$(BIN)/hub broker stop

clean: broker-stop
	rm -rf $(VENV) .hub-worker .demo
