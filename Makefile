# Every developer task is one target here. `make serve` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
ARGS   ?=

.PHONY: serve test lint check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

## serve: create the venv, install, and serve on 127.0.0.1:8443 (SQLite ./tidings.db)
serve: $(VENV)/.installed
	$(BIN)/tidings serve $(ARGS)

## test: install dev dependencies and the binaries tests need, run the whole suite
test: $(VENV)/.dev
	scripts/test-deps
	$(BIN)/python -m pytest --cov --cov-report=term --cov-fail-under=90 $(ARGS)

## lint: ruff and mypy
lint: $(VENV)/.dev
	$(BIN)/ruff check src tests
	$(BIN)/mypy

check: lint test

.PHONY: autobahn
## autobahn: RFC 6455 compliance: kosoku runs the Autobahn cases against /test/echo of a node
##           and against the SDK's transport; rewrites docs/compliance/ (ARGS='--raw DIR' keeps HTML)
autobahn: $(VENV)/.installed
	$(BIN)/python -c 'import kosoku' 2>/dev/null || $(BIN)/pip install --quiet 'kosoku==0.1.0'
	$(BIN)/python -m tests.compliance.run $(ARGS)

clean:
	rm -rf $(VENV) .coverage .mypy_cache .ruff_cache .pytest_cache
