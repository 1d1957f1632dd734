# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP_INSTALL := $(BIN)/python -m pip install --quiet --constraint constraints.txt
# laion-clap needs torchvision, which only imports beside a torch build other than the pinned CPU one:
# its backend is tested in a second environment (see constraints-clap.txt and envs/clap.yaml).
CLAP_VENV := .venv-clap
CLAP_BIN := $(CLAP_VENV)/bin

.PHONY: demo test test-slow test-slurm test-clap faults dry-run clean

$(BIN)/b2m: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	$(PIP_INSTALL) --editable '.[test,torch]'
	touch $@

$(CLAP_BIN)/b2m: pyproject.toml constraints-clap.txt
	$(PYTHON) -m venv $(CLAP_VENV)
	$(CLAP_BIN)/python -m pip install --quiet --constraint constraints-clap.txt \
		torch torchvision laion-clap --editable '.[test]'
	touch $@

# The Snakemake pipeline on the synthetic demo study, offline: results/summary/*.tsv
demo: $(BIN)/b2m
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --profile profiles/local
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --profile profiles/local --report results/report.html
	@cat results/summary/identification.tsv results/summary/encoding.tsv
	@grep -P '^(subject|sub-001\ttest)\t' results/summary/reconstruction.tsv
	@echo "report: results/report.html; listening page: results/report/listening.html"

# The workflow's conventions (snakemake --lint finds nothing, snakefmt leaves it unchanged), then the default (fast)
# test suite; `make test-slow` runs the end-to-end pipeline tests.
test: $(BIN)/b2m
	@for config in config/config.yaml config/ds003720.yaml; do \
		lints=$$(PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake --lint --configfile $$config 2>&1) \
			|| { echo "snakemake --lint --configfile $$config:"; echo "$$lints"; exit 1; }; \
	done; echo "snakemake --lint: no lints (demo and ds003720 configs)"
	$(BIN)/snakefmt --check Snakefile workflow/
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest

test-slow: $(BIN)/b2m
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m slow

# The workflow on a real single-node SLURM cluster that the tests bring up on this machine and stop at the end
# (tests/slurm/cluster-up; needs root, installs Debian's slurm-wlm, slurmdbd, munge and mariadb-server if missing).
test-slurm: $(BIN)/b2m
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m slurm tests/slurm

# The fault-injection suite alone (README, Troubleshooting): bad input, kill and rerun, untrusted files.
faults: $(BIN)/b2m
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest tests/faults -m "slow or not slow"

# The laion-clap backend's tests, in .venv-clap (about 5.5 GB: torch 2.14.1 + torchvision 0.29.1).
test-clap: $(CLAP_BIN)/b2m
	PATH=$(abspath $(CLAP_BIN)):$$PATH $(CLAP_BIN)/python -m pytest -m laion_clap

dry-run: $(BIN)/b2m
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake -n --profile profiles/local

clean:
	rm -rf results data models .snakemake
