# custpulse: the two commands that matter are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: browser monitoring setup stack-up stack-down stack-reset stack-status test test-unit test-integration demo bench bench-analyses bench-churn lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "setup: $(PYTHON) not found; install Python 3.11 or run make PYTHON=/path/to/python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $(STAMP)

stack-up:
	@scripts/stack.sh up

browser:
	@scripts/browser.sh

monitoring:
	@scripts/monitoring.sh

stack-down:
	@scripts/stack.sh down

stack-reset:
	@scripts/stack.sh reset

stack-status:
	@scripts/stack.sh status

test: setup stack-up browser monitoring
	$(BIN)/pytest

test-unit: setup monitoring
	$(BIN)/pytest tests/unit processors schemas

test-integration: setup stack-up browser
	$(BIN)/pytest tests/integration

demo: setup stack-up
	$(BIN)/python -m custpulse.streams.demo

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo-data

bench: setup stack-up
	$(BIN)/python bench/run.py

bench-analyses: setup
	$(BIN)/python bench/analyses.py

bench-churn: setup
	$(BIN)/python bench/churn.py
