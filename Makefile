# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP_INSTALL := $(BIN)/python -m pip install --quiet --constraint constraints.txt

.PHONY: demo test test-slow dry-run clean

$(BIN)/b2m: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) --editable '.[test]'
	touch $@

# The Snakemake pipeline on the synthetic demo study, offline: results/summary/identification.tsv
demo: $(BIN)/b2m
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --profile profiles/local
	@cat results/summary/identification.tsv

# The default (fast) test suite; `make test-slow` runs the end-to-end pipeline tests.
test: $(BIN)/b2m
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest

test-slow: $(BIN)/b2m
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m slow

dry-run: $(BIN)/b2m
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake -n --profile profiles/local

clean:
	rm -rf results data .snakemake
