# Set-up and everyday commands. Each target creates the virtual environment if
# it is missing and installs what it needs; nothing else must be on the machine
# but Python >= 3.11.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch; a bare `torch` requirement would pull a CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install browser test lint typecheck unit demo models clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium, for the test that opens the plan preview page in a real browser.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP) browser
	$(BIN)/pytest -q

test: lint typecheck unit

demo: $(STAMP)
	$(BIN)/worldplan demo --out artifacts/demo

models: $(STAMP)
	$(BIN)/worldplan models build --out models

clean:
	rm -rf $(VENV) artifacts .mypy_cache .ruff_cache .pytest_cache
