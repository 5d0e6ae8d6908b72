# The two set-up commands of the README: `make demo` and `make test`. Both create .venv when it
# is missing and install the project in it (editable, with the dev tools).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= runs/demo
PYTEST_ARGS ?=

.PHONY: demo test lint install clean slurm-deps

demo: $(STAMP)
	$(BIN)/coir demo --out $(DEMO_OUT)

test: $(STAMP) slurm-deps
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The SLURM integration tests need Debian's slurm and munge; installed here when missing (root).
slurm-deps:
	bash launch/testbed/install_slurm.sh

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
