# Two commands matter: `make run` and `make test`. Both create .venv/ on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck simulate bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## until the service lands: a simulated contact-center day through the real engine
	$(BIN)/usher simulate --agents 50 --arrival-rate 0.35 --mean-handle-time 240 \
		--duration 28800 --skills 4 --skills-per-agent 2 --capacity 2 --patience 300

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q
	$(BIN)/usher bench core --agents 100,1000 --quick --json > /dev/null

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
