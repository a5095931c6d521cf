# Every developer task is one target here. `make serve` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
ARGS   ?=

JS      = clients/js
DESKMAP = clients/desk-map
# The desk map app's build (served at /desks/), remade when a source changes.
DESKMAP_BUILT = src/tidings/web/desk_map/index.html
DESKMAP_SRC   = $(shell find $(DESKMAP)/src -type f 2>/dev/null) $(DESKMAP)/index.html \
                $(DESKMAP)/vite.config.ts $(DESKMAP)/tsconfig.json
# The Python client, its own distribution (tidings-client), installed with the server,
# which depends on it: one pip command, so pip takes it from here and not from an index.
PYCLIENT = clients/python

.PHONY: serve test test-js test-deploy lint check clean desk-map

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(PYCLIENT)/pyproject.toml src/tidings/__init__.py | $(BIN)/python
	$(BIN)/pip install --quiet -e $(PYCLIENT) -e .
	touch $@

# The version lives in src/tidings/__init__.py: a new one reinstalls, so the metadata agrees.
$(VENV)/.dev: pyproject.toml $(PYCLIENT)/pyproject.toml src/tidings/__init__.py | $(BIN)/python
	$(BIN)/pip install --quiet -e $(PYCLIENT) -e '.[dev]'
	touch $@ $(VENV)/.installed

## serve: create the venv, install, build the desk map app, and serve on 127.0.0.1:8443
##        (SQLite ./tidings.db)
serve: $(VENV)/.installed $(DESKMAP_BUILT)
	$(BIN)/tidings serve $(ARGS)

## test: install dev dependencies and the binaries tests need, run the whole suite
##       (pytest, then the JavaScript client's tests under Node's test runner);
##       the deployment tests are `make test-deploy`
test: $(VENV)/.dev $(DESKMAP_BUILT)
	scripts/test-deps
	$(BIN)/python -m pytest --ignore=tests/deploy --cov --cov-report=term --cov-fail-under=90 --durations=25 $(ARGS)
	$(MAKE) test-js

## test-deploy: deploy/ for real (tests/deploy): the Docker image, the compose stack behind
##              nginx, PM2 and the systemd unit. Installs docker.io, docker-compose and
##              debootstrap, starts its own dockerd (root) and stops it; a few minutes. The
##              Debian base image and the layers are cached in $$TIDINGS_DEPLOY_CACHE
##              (default /var/cache/tidings-deploy).
test-deploy: $(VENV)/.dev
	scripts/test-deps --deploy
	$(BIN)/python -m pytest tests/deploy -p no:cacheprovider --durations=10 $(ARGS)

$(JS)/node_modules/.package-lock.json: $(JS)/package.json $(JS)/package-lock.json
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error

## test-js: the JavaScript client (clients/js) against a real `tidings serve` (Node >= 20),
##          and its `npm pack` tarball installed into a scratch project, running its example
test-js: $(VENV)/.dev $(JS)/node_modules/.package-lock.json
	cd $(JS) && TIDINGS_BIN=$(abspath $(BIN))/tidings \
		node --experimental-websocket --test --test-concurrency=1 test/*.test.js

# Without npm, serve goes on without the desk map (/desks/ then says how to build it).
NO_NPM = echo "make: npm not found: the desk map app (/desks/) is not built; install Node >= 20 and npm" >&2

$(DESKMAP)/node_modules/.package-lock.json: $(DESKMAP)/package.json $(DESKMAP)/package-lock.json
	@command -v npm >/dev/null || { $(NO_NPM); exit 0; }
	cd $(DESKMAP) && npm ci --no-audit --no-fund --loglevel=error

## desk-map: build the desk map app (clients/desk-map, Vue 3 + Vite) into the package,
##           where Tidings serves it at /desks/ (Node >= 20 and npm; see docs/web.md)
desk-map: $(DESKMAP_BUILT)

$(DESKMAP_BUILT): $(DESKMAP)/node_modules/.package-lock.json $(DESKMAP_SRC)
	@command -v npm >/dev/null || { $(NO_NPM); exit 0; }
	cd $(DESKMAP) && npm run --silent build -- --logLevel warn

## lint: ruff and mypy (server and clients/python); the JavaScript client's and the desk
##       map app's type-checks (tsc on JSDoc, vue-tsc) and linters (eslint)
lint: $(VENV)/.dev $(JS)/node_modules/.package-lock.json $(DESKMAP)/node_modules/.package-lock.json
	$(BIN)/ruff check src tests bench deploy $(PYCLIENT)
	$(BIN)/mypy
	cd $(JS) && npm run --silent typecheck && npm run --silent lint
	cd $(DESKMAP) && npm run --silent typecheck && npm run --silent lint

check: lint test

.PHONY: vendor-api-docs
## vendor-api-docs: re-vendor the /api/docs viewer (swagger-ui-dist) and the AsyncAPI 3.0
##                  JSON Schema the tests validate with, from npm (versions pinned in the script)
vendor-api-docs:
	scripts/vendor-api-docs

.PHONY: autobahn
## autobahn: RFC 6455 compliance: kosoku runs the Autobahn cases against /test/echo of a node
##           and against the SDK's transport; rewrites docs/compliance/ (ARGS='--raw DIR' keeps HTML)
autobahn: $(VENV)/.installed
	$(BIN)/python -c 'import kosoku' 2>/dev/null || $(BIN)/pip install --quiet 'kosoku==0.1.0'
	$(BIN)/python -m tests.compliance.run $(ARGS)

.PHONY: chaos
## chaos: long fault runs with the delivery ledger (kill -9, SIGTERM, PostgreSQL restarts,
##        a 10 000-client reconnect storm, network partitions: ARGS='--only partition');
##        rewrites the table in docs/reliability.md
chaos: $(VENV)/.dev
	scripts/test-deps
	$(BIN)/python -m tests.chaos.soak $(ARGS)

.PHONY: fuzz
## fuzz: property tests of the frame decoder and payload validation with 20 000 examples each
fuzz: $(VENV)/.dev
	HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/property -q $(ARGS)

clean:
	rm -rf $(VENV) .coverage .mypy_cache .ruff_cache .pytest_cache $(JS)/node_modules \
		$(DESKMAP)/node_modules src/tidings/web/desk_map $(JS)/types

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
