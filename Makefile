# Two commands matter: `make run` and `make test`. Both create .venv/ on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck simulate bench clean protos check-protos lint-protos

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml clients/python/pyproject.toml
	$(BIN)/pip install --quiet -e ./clients/python -e '.[dev]'
	touch $(STAMP)

# buf (the proto linter) comes from npm as a devDependency; `npm ci` runs once per lockfile.
NODE_STAMP := node_modules/.installed

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

run: $(STAMP)  ## the service with a demo tenant (embedded PostgreSQL, Redis and Ray); Ctrl-C stops
	$(BIN)/usher serve --demo

simulate: $(STAMP)  ## a simulated contact-center day through the real engine
	$(BIN)/usher simulate --agents 50 --arrival-rate 0.35 --mean-handle-time 240 \
		--duration 28800 --skills 4 --skills-per-agent 2 --capacity 2 --patience 300

test: $(STAMP) lint typecheck lint-protos check-protos
	$(BIN)/pytest -q
	$(BIN)/usher bench core --agents 100,1000 --quick --json > /dev/null
	$(BIN)/usher bench store --quick --json > /dev/null
	$(BIN)/usher bench actor --quick --json > /dev/null
	$(BIN)/usher bench e2e --quick --json > /dev/null

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

protos: $(STAMP)  ## regenerate the checked-in stubs clients/python/usher/v1 from protos/
	$(BIN)/python scripts/gen_protos.py

check-protos: $(STAMP)  ## the stubs match a fresh generation; the SDK type-checks (strict)
	$(BIN)/python scripts/gen_protos.py --check
	cd clients/python && ../../$(BIN)/mypy

# buf comes from npm: where Node.js is missing (a bare user machine), this step is skipped with
# a notice; CI machines have Node.js, so the protos are always linted there.
ifeq ($(shell command -v npm 2>/dev/null),)
lint-protos:
	@echo "lint-protos: npm not found, skipping buf lint (install Node.js to run it)"
else
lint-protos: $(NODE_STAMP)  ## buf lint (STANDARD) and buf format
	npx --no-install buf lint
	npx --no-install buf format --diff --exit-code
endif

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
