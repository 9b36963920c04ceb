# The two commands a newcomer needs: `make demo` and `make test`.
# Both build on `make setup`, which does nothing when everything is in place.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup constraints demo test quick lint audit typecheck unit broker-stop clean

setup: $(STAMP)
	@$(BIN)/hub broker fetch

# constraints.txt is the lock: every package of the hub, all its extras and its build
# backend, pinned with the hashes of their files. pip installs exactly those, checking
# every hash (--require-hashes), then the hub itself from the checkout (an editable
# install has no file to hash), built by the hash-checked setuptools just installed.
$(STAMP): pyproject.toml constraints.txt
	@echo "Creating $(VENV) and installing the hub with its locked dependencies (hash-checked) ..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r constraints.txt
	@$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# Resolves constraints.txt anew from pyproject.toml (its dependencies, every extra and
# [build-system] requires) for every platform and Python >= 3.11, with hashes; then the
# image's lock, deploy/docker/requirements.txt (the hub with the report extra, same pins).
# Pins that still fit are kept; to move them: make constraints UPGRADE=--upgrade, or
# UPGRADE="--upgrade-package croniter". Needs the package index.
UPGRADE ?=
LOCK := $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	  --override constraints-overrides.txt --custom-compile-command "make constraints"
BUILD_REQUIRES := $(BIN)/python -c 'import tomllib; \
	  print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")'
constraints: setup
	@$(BUILD_REQUIRES) | $(LOCK) --all-extras --output-file constraints.txt $(UPGRADE) pyproject.toml -
	@$(BUILD_REQUIRES) | $(LOCK) --extra report --constraints constraints.txt \
	  --output-file deploy/docker/requirements.txt pyproject.toml -

demo: setup
	@$(BIN)/hub demo

lint: setup
	$(BIN)/ruff check hub adapters streams tests benchmarks .ci
	$(BIN)/ruff format --check hub adapters streams tests benchmarks .ci
	$(BIN)/lint-imports
	$(BIN)/deptry hub adapters streams
	@# aiokafka and mode: faust-streaming's, which the stream benchmark and the packaging test use on purpose; quixstreams: the stream benchmark's optional peer, missing or installed beside the hub (docs/benchmarks.md).
	$(BIN)/deptry tests benchmarks .ci --exclude '(^|/)(\.venv|__pycache__)/' --ignore DEP002,DEP004 \
	  --per-rule-ignores 'DEP001=quixstreams,DEP003=aiokafka|pydantic_core|mode|quixstreams'
	$(BIN)/python .ci/audit_lock.py

# The lock against known vulnerabilities; unlike `make lint`, fails when the
# vulnerability service cannot be asked.
audit: setup
	$(BIN)/python .ci/audit_lock.py --strict

typecheck: setup
	$(BIN)/mypy --strict
	$(BIN)/mypy --strict .ci/audit_lock.py

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
