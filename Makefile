# liftkd: every artefact is a make target; notebooks run through papermill.
#   make reproduce                  the cpu profile (default), offline
#   make reproduce PROFILE=smoke    the same path in minutes (what CI checks)
#   make test                       ruff + pytest
SHELL := /bin/bash
.DEFAULT_GOAL := help

PROFILE ?= cpu
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR := runs/$(PROFILE)
# the cpu profile's figures are the committed ones; other profiles draw into their own folder
FIGURES := $(if $(filter cpu,$(PROFILE)),figures,figures/$(PROFILE))
NOTEBOOKS := 00_feature_extractor 01_teacher
EXECUTED := $(patsubst %,$(RUN_DIR)/%.ipynb,$(NOTEBOOKS))
PAPERMILL := $(PY) -m papermill --log-output --no-progress-bar

.PHONY: help venv reproduce test lint format lab clean clean-runs

help: ## list the targets
	@echo "liftkd: LIFT and PLACE reproduced. PROFILE=smoke|cpu|gpu (now: $(PROFILE))"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" || true
	set -o pipefail; $(PY) -m pip install --quiet -e '.[dev]' 2>&1 | { grep -v "is ignored" || true; }
	touch $@

venv: $(STAMP) ## create the project environment in .venv (done by every target that needs it)

reproduce: $(EXECUTED) ## run every notebook of PROFILE; results into figures/
	@echo "done: executed notebooks in $(RUN_DIR), figures and results in $(FIGURES)"

# one executed notebook per source notebook; an interrupted run leaves no executed copy behind
$(RUN_DIR)/%.ipynb: notebooks/%.ipynb | $(STAMP)
	@mkdir -p $(RUN_DIR) $(FIGURES)
	@start=$$(date +%s); \
	$(PAPERMILL) $< $@.partial.ipynb -p PROFILE $(PROFILE) -p RUN_DIR $(RUN_DIR) -p FIGURES_DIR $(FIGURES) \
	&& mv $@.partial.ipynb $@ \
	&& echo "$* ($(PROFILE)): $$(( $$(date +%s) - start )) s" | tee -a $(RUN_DIR)/timings.txt

$(RUN_DIR)/01_teacher.ipynb: $(RUN_DIR)/00_feature_extractor.ipynb

test: $(STAMP) ## ruff (lint, format) and pytest, including the smoke profile end to end
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

lint: $(STAMP) ## fix what ruff can fix, and format
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

lab: $(STAMP) ## JupyterLab on the notebooks
	$(PY) -m jupyter lab notebooks

clean-runs: ## delete the run folder of PROFILE (checkpoints, executed notebooks)
	rm -rf $(RUN_DIR)

clean: ## delete every run folder and the environment
	rm -rf runs $(VENV)
