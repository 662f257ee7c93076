# Two commands matter: `make run` and `make test`. Both create .venv/ on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-ts lint typecheck simulate bench clean protos check-protos lint-protos \
	console check-console

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# usher depends on usher-client from this checkout (pyproject.toml); the SDK is then installed
# editable over it, so regenerated stubs take effect without reinstalling.
$(STAMP): $(BIN)/python pyproject.toml clients/python/pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps -e ./clients/python
	touch $(STAMP)

# buf (the proto linter) comes from npm as a devDependency; `npm ci` runs once per lockfile.
NODE_STAMP := node_modules/.installed

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# The TypeScript SDK (clients/typescript) has its own package.json and lockfile.
TS_DIR   := clients/typescript
TS_STAMP := $(TS_DIR)/node_modules/.installed
NPM      := $(shell command -v npm 2>/dev/null)

$(TS_STAMP): $(TS_DIR)/package.json $(TS_DIR)/package-lock.json
	cd $(TS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $(TS_STAMP)

run: $(STAMP)  ## the service with a demo tenant (embedded PostgreSQL, Redis and Ray); Ctrl-C stops
	$(BIN)/usher serve --demo

simulate: $(STAMP)  ## a simulated contact-center day through the real engine
	$(BIN)/usher simulate --agents 50 --arrival-rate 0.35 --mean-handle-time 240 \
		--duration 28800 --skills 4 --skills-per-agent 2 --capacity 2 --patience 300

test: $(STAMP) lint typecheck lint-protos check-protos
	$(BIN)/pytest -q
	$(MAKE) --no-print-directory test-ts
	$(BIN)/usher bench core --agents 100,1000 --quick --json > /dev/null
	$(BIN)/usher bench store --quick --json > /dev/null
	$(BIN)/usher bench actor --quick --json > /dev/null
	$(BIN)/usher bench e2e --quick --json > /dev/null

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Node.js is needed for the TypeScript side; where npm is missing (a bare user machine) it is
# skipped with a notice. CI machines have it, so the TypeScript SDK is always checked there.
ifeq ($(NPM),)
protos: $(STAMP)  ## regenerate the checked-in Python stubs (and TypeScript with npm) from protos/
	$(BIN)/python scripts/gen_protos.py
	@echo "protos: npm not found, the TypeScript SDK's code was not regenerated"

check-protos: $(STAMP)
	$(BIN)/python scripts/gen_protos.py --check
	cd clients/python && ../../$(BIN)/mypy
	@echo "check-protos: npm not found, skipping the TypeScript SDK's drift check"

test-ts:
	@echo "test-ts: npm not found, skipping the TypeScript SDK's tests"
else
protos: $(STAMP) $(NODE_STAMP) $(TS_STAMP)  ## regenerate the Python and TypeScript code from protos/
	$(BIN)/python scripts/gen_protos.py  # runs scripts/gen_ts_protos.py too

check-protos: $(STAMP) $(NODE_STAMP) $(TS_STAMP)  ## both SDKs match a fresh generation and type-check
	$(BIN)/python scripts/gen_protos.py --check
	cd clients/python && ../../$(BIN)/mypy
	$(BIN)/python scripts/gen_ts_protos.py --check
	cd $(TS_DIR) && npx --no-install tsc -p tsconfig.json --noEmit

test-ts: $(STAMP) $(TS_STAMP)  ## the TypeScript SDK's Node tests against a real usher serve
	cd $(TS_DIR) && USHER_PYTHON=$(CURDIR)/$(BIN)/python npm test
endif

# The web console (console/, served at /console) is built into core/console/assets and checked
# in, so `make run` needs no Node.js. `make console` rebuilds it after a change to console/src
# (or to the TypeScript SDK or the protos: the bundle holds their generated code);
# `make check-console` fails when the checked-in bundle differs from a fresh build.
CONSOLE_STAMP := console/node_modules/.installed

$(CONSOLE_STAMP): console/package.json console/package-lock.json
	cd console && npm ci --no-audit --no-fund --loglevel=error
	touch $(CONSOLE_STAMP)

console: $(TS_STAMP) $(CONSOLE_STAMP)  ## rebuild the web console's checked-in bundle (needs npm)
	cd $(TS_DIR) && npm run --silent build
	cd console && npx --no-install tsc -p tsconfig.json && node build.mjs

check-console: $(TS_STAMP) $(CONSOLE_STAMP)  ## the console's unit tests; the bundle matches a build
	cd $(TS_DIR) && npm run --silent build
	cd console && npx --no-install tsc -p tsconfig.json && npm test --silent && node build.mjs --check

# buf comes from npm: where Node.js is missing (a bare user machine), this step is skipped with
# a notice; CI machines have Node.js, so the protos are always linted there.
ifeq ($(NPM),)
lint-protos:
	@echo "lint-protos: npm not found, skipping buf lint (install Node.js to run it)"
else
lint-protos: $(NODE_STAMP)  ## buf lint (STANDARD) and buf format
	npx --no-install buf lint
	npx --no-install buf format --diff --exit-code
endif

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
