# Every developer task is one target here. `make serve` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
ARGS   ?=

JS      = clients/js
# The Python client, its own distribution (tidings-client), installed with the server,
# which depends on it: one pip command, so pip takes it from here and not from an index.
PYCLIENT = clients/python

.PHONY: serve test test-js lint check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(PYCLIENT)/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e $(PYCLIENT) -e .
	touch $@

$(VENV)/.dev: pyproject.toml $(PYCLIENT)/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e $(PYCLIENT) -e '.[dev]'
	touch $@ $(VENV)/.installed

## serve: create the venv, install, and serve on 127.0.0.1:8443 (SQLite ./tidings.db)
serve: $(VENV)/.installed
	$(BIN)/tidings serve $(ARGS)

## test: install dev dependencies and the binaries tests need, run the whole suite
##       (pytest, then the JavaScript client's tests under Node's test runner)
test: $(VENV)/.dev
	scripts/test-deps
	$(BIN)/python -m pytest --cov --cov-report=term --cov-fail-under=90 $(ARGS)
	$(MAKE) test-js

$(JS)/node_modules/.package-lock.json: $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error

## test-js: the JavaScript client (clients/js) against a real `tidings serve` (Node >= 20),
##          and its `npm pack` tarball installed into a scratch project, running its example
test-js: $(VENV)/.dev $(JS)/node_modules/.package-lock.json
	cd $(JS) && TIDINGS_BIN=$(abspath $(BIN))/tidings \
		node --experimental-websocket --test --test-concurrency=1 test/*.test.js

## lint: ruff and mypy (server and clients/python); the JavaScript client's type-check
##       (tsc on its JSDoc) and linter (eslint)
lint: $(VENV)/.dev $(JS)/node_modules/.package-lock.json
	$(BIN)/ruff check src tests bench $(PYCLIENT)
	$(BIN)/mypy
	cd $(JS) && npm run --silent typecheck && npm run --silent lint

check: lint test

.PHONY: autobahn
## autobahn: RFC 6455 compliance: kosoku runs the Autobahn cases against /test/echo of a node
##           and against the SDK's transport; rewrites docs/compliance/ (ARGS='--raw DIR' keeps HTML)
autobahn: $(VENV)/.installed
	$(BIN)/python -c 'import kosoku' 2>/dev/null || $(BIN)/pip install --quiet 'kosoku==0.1.0'
	$(BIN)/python -m tests.compliance.run $(ARGS)

.PHONY: chaos
## chaos: long fault runs with the delivery ledger (kill -9, SIGTERM, PostgreSQL restarts,
##        a 10 000-client reconnect storm); rewrites the table in docs/reliability.md
chaos: $(VENV)/.dev
	scripts/test-deps
	$(BIN)/python -m tests.chaos.soak $(ARGS)

.PHONY: fuzz
## fuzz: property tests of the frame decoder and payload validation with 20 000 examples each
fuzz: $(VENV)/.dev
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/property -q $(ARGS)

clean:
	rm -rf $(VENV) .coverage .mypy_cache .ruff_cache .pytest_cache $(JS)/node_modules \
		$(JS)/types

.PHONY: bench bench-quick
## bench: every benchmark scenario against every peer, 3 repetitions (about 65 min); writes
##        bench/results/<date>-<scenario>.json and appends a table to docs/benchmarks.md
bench: $(VENV)/.installed
	PY=$(BIN)/python bench/install.sh
	$(BIN)/python -m bench $(ARGS)

## bench-quick: a smoke run under 60 s (small sizes, Node ws and Tidings /socket.io as the peers,
##              one cluster layout); records nothing
bench-quick: $(VENV)/.installed
	PY=$(BIN)/python bench/install.sh quick
	$(BIN)/python -m bench --quick --no-docs --out $${TMPDIR:-/tmp}/tidings-bench-quick $(ARGS)
