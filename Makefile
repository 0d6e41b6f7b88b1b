# liftkd: every artefact is a make target; notebooks run through papermill.
#   make reproduce                  the cpu profile (default), offline
#   make reproduce PROFILE=smoke    the same path in minutes (what CI checks)
#   make test                       ruff + pytest (CI); make unit: the fast tests alone
SHELL := /bin/bash
.DEFAULT_GOAL := help

PROFILE ?= cpu
# a run of other data or settings gets its own folders: make reproduce RUN_NAME=faces OVERRIDES='{...}'
RUN_NAME ?= $(PROFILE)
OVERRIDES ?= {}
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/$(RUN_NAME)
# make names files by splitting on spaces: a run folder with one cannot be built (say so now)
$(if $(word 2,$(RUN_DIR)),$(error the run folder '$(RUN_DIR)' (RUN_NAME or RUN_DIR) holds a \
	space: make cannot name files there; use letters, digits, '-', '_' and '.'))
$(if $(strip $(RUN_NAME)),,$(error RUN_NAME is empty (PROFILE='$(PROFILE)'): name the run, e.g. RUN_NAME=cpu))
# OVERRIDES as one shell word, whatever quotes it holds
OVERRIDES_ARG = '$(subst ','\'',$(OVERRIDES))'
OVERRIDES_YAML = 'OVERRIDES: $(subst ','\'',$(OVERRIDES))'
# the cpu profile's figures are the committed ones; other runs draw into their own folder
FIGURES ?= $(if $(filter cpu,$(RUN_NAME)),figures,figures/$(RUN_NAME))
NOTEBOOKS := 00_feature_extractor 01_teacher 02_pruning 03_error_decomposition
EXECUTED := $(patsubst %,$(RUN_DIR)/%.ipynb,$(NOTEBOOKS))
PAPERMILL := $(PY) -m papermill --log-output --no-progress-bar --start-timeout 300

# The KD sweep (notebook 04, once per job): every objective of a ratio trained side by side, and
# the LIFT+PLACE ablations and the authors' recipe at the highest ratio where the profile puts them
# in make reproduce (distill.in_reproduce; the cpu profile's are studies: make ablation, make
# authors). The jobs are the profile's (`python -m liftkd.stages.sweep list`), computed once per
# make and only in the recipes that need them (after the venv exists); SEEDS='0 1 2' replaces the
# profile's seeds.
SEEDS ?=
SWEEP = $(eval SWEEP := $(shell $(PY) -m liftkd.stages.sweep list --profile $(PROFILE) \
	--overrides $(OVERRIDES_ARG) $(if $(strip $(SEEDS)),--seeds $(SEEDS)) || echo LIST_FAILED))$(if \
	$(filter LIST_FAILED,$(SWEEP)),$(error could not list the sweep's jobs; see why with: \
	$(PY) -m liftkd.stages.sweep list --profile $(PROFILE) --overrides $(OVERRIDES_ARG) \
	$(if $(strip $(SEEDS)),--seeds $(SEEDS))),$(SWEEP))
SWEEP_RESULTS = $(patsubst %,$(RUN_DIR)/distill/%/results.json,$(SWEEP))
# the studies (notebook 05 reads their results when they exist): make ablation and make authors,
# the sweep's ablation and authors' recipe jobs alone (in make reproduce too where
# distill.in_reproduce names them); make grid, the K x coarse-term grid at the aggressive ratio;
# make trend, the main objectives at other ratios (claim 1). SEEDS='1' runs those seeds' jobs of
# a study alone (a study's seeds one make at a time)
study_jobs = $(shell $(PY) -m liftkd.stages.sweep list --study $(1) --profile $(PROFILE) \
	--overrides $(OVERRIDES_ARG) $(if $(strip $(SEEDS)),--seeds $(SEEDS)) || echo LIST_FAILED)
STUDY_RESULTS = $(if $(filter LIST_FAILED,$(1)),$(error could not list the study's jobs; see \
	why with: $(PY) -m liftkd.stages.sweep list --study ablation|authors|grid|trend --profile $(PROFILE) \
	--overrides $(OVERRIDES_ARG)),$(patsubst %,$(RUN_DIR)/distill/%/results.json,$(1)))
# when this make started (make reproduce says how long it took)
STARTED := $(shell date +%s)
# jobs at once in make reproduce, and torch threads per job (the cores shared between them)
JOBS ?= 2
THREADS ?= $(shell n=$$(( $$(nproc) / $(JOBS) )); echo $$(( n > 0 ? n : 1 )))
# several GPUs: LAUNCH='accelerate launch --multi_gpu --num_processes 4' trains each job under it
LAUNCH ?=

.PHONY: help venv settings reproduce sweep ablation authors grid trend regime regime-teacher regime-run regime-teacher-run list-sweep dit latent tutorial test unit bench lint lab clean clean-runs

help: ## list the targets, target patterns and variables
	@echo "liftkd: LIFT and PLACE reproduced. Targets:"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "Target patterns:"
	@echo "  make distill-<job>                  one KD job of the sweep (names: make list-sweep), e.g. make distill-main_r0.8_s0"
	@echo "  make $(RUN_DIR)/<notebook>.ipynb    one notebook of the run, e.g. make $(RUN_DIR)/01_teacher.ipynb"
	@echo "Variables (value now):"
	@echo "  PROFILE=$(PROFILE)      smoke | cpu | gpu"
	@echo "  OVERRIDES="$(OVERRIDES_ARG)"    settings by dotted name, a YAML mapping: '{teacher.steps: 100}'"
	@echo "  RUN_NAME=$(RUN_NAME)    a run with other settings gets its own name (folders below)"
	@echo "  RUN_DIR=$(RUN_DIR)  FIGURES=$(FIGURES)    where runs and figures go"
	@echo "  SEEDS='$(SEEDS)'    training seeds of the sweep, or of a study (make ablation, ...; empty: the profile's)"
	@echo "  STUDY=$(STUDY)    make list-sweep STUDY=ablation|authors|grid|trend lists a study's jobs"
	@echo "  JOBS=$(JOBS)  THREADS=$(THREADS)    sweep jobs at once, torch threads per job"
	@echo "  LAUNCH='$(LAUNCH)'    e.g. 'accelerate launch --multi_gpu --num_processes 4'"
	@echo "  TUTORIAL_DIR=$(TUTORIAL_DIR)    where make tutorial runs"

# (messages on stderr, so that a target's own output, such as make list-sweep, stays clean)
$(STAMP): pyproject.toml
	@echo "creating $(VENV) and installing the project (a few minutes, once)" >&2
	@$(PYTHON) -m venv $(VENV) >&2
	@$(PY) -m pip install --quiet --upgrade pip 2>&1 | grep -v "is ignored" >&2 || true
	@set -o pipefail; $(PY) -m pip install --quiet -e '.[dev]' 2>&1 | { grep -v "is ignored" || true; } >&2
	@touch $@

venv: $(STAMP) ## create the project environment in .venv (done by every target that needs it)

# the check imports torch and diffusers (several seconds): the top make runs it once, and its sub-makes
# (SUBMAKE) are told it passed
SUBMAKE = $(MAKE) --no-print-directory SETTINGS_CHECKED=1
settings: $(STAMP) ## check PROFILE, OVERRIDES and the run folder before anything runs
	@$(if $(SETTINGS_CHECKED),true,$(PY) -m liftkd.check_settings --profile $(PROFILE) --overrides $(OVERRIDES_ARG) \
		--run-dir '$(subst ','\'',$(RUN_DIR))')

# one make over every notebook, JOBS at a time with THREADS torch threads each: make starts whatever
# is ready (the DiT and latent paths need only notebook 00, so they run beside the teacher and
# the pruning), then 05 reads it all. JOBS=1 runs them one after another on every core.
reproduce: settings ## run every notebook of PROFILE, JOBS at a time (the sweep's jobs and 06/07 beside 01-03); results into figures/
	+@$(SUBMAKE) -j$(JOBS) $(EXECUTED) $(SWEEP_RESULTS) $(BACKBONES)
	+@$(SUBMAKE) $(RUN_DIR)/05_results.ipynb
	@echo "done in $$(( ($$(date +%s) - $(STARTED) + 30) / 60 )) min: executed notebooks in" \
		"$(RUN_DIR), figures and results in $(FIGURES) (each stage's time: $(RUN_DIR)/timings.txt)"

sweep: settings ## the KD jobs of notebook 04 (make -j2 sweep: two at once; SEEDS='0 1 2')
	+@$(SUBMAKE) $(SWEEP_RESULTS)

# the studies' jobs run JOBS at a time (grid: its parts, distill.grid_jobs, of every seed), then
# notebook 05 again
ablation: ## the LIFT+PLACE ablations at the aggressive ratio: fixed schedules, K, coarse norm and scale (then 05)
authors: ## OutKD and LIFT+PLACE under the authors' recipe at the aggressive ratio (then 05)
grid: ## the K x coarse-term study at the aggressive ratio (its jobs, then notebook 05 again)
trend: ## the main objectives at other ratios, for claim 1 (then notebook 05 again)
# the setting that gives each study its students (named when a profile has none)
STUDY_SETTING := ablation=distill.ablations authors=distill.authors_objectives \
	grid=distill.grid_objectives trend=distill.trend_ratios
study_setting = $(patsubst $(1)=%,%,$(filter $(1)=%,$(STUDY_SETTING)))
ablation authors grid trend: settings
	+@$(SUBMAKE) -j$(JOBS) $(or $(call STUDY_RESULTS,$(call study_jobs,$@)),$(error the \
		$(PROFILE) profile has no $@ study: $(call study_setting,$@) is empty))
	+@$(SUBMAKE) $(RUN_DIR)/05_results.ipynb

# the paper's regime (notebook 08): a run of its own in $(RUN_DIR)/regime, figures in
# $(FIGURES)/regime, the profile with the regime's overrides (python -m liftkd.stages.regime
# overrides): notebooks 00-02 on every core (make regime-teacher alone), its KD jobs JOBS at a
# time (SEEDS: those seeds' alone), then 08, then 05 again
REGIME_RUN = $(RUN_DIR)/regime
REGIME_MAKE = overrides=$$($(PY) -m liftkd.stages.regime overrides --profile $(PROFILE) \
		--overrides $(OVERRIDES_ARG)) \
	&& $(MAKE) --no-print-directory SETTINGS_CHECKED= RUN_DIR=$(REGIME_RUN) \
		FIGURES=$(FIGURES)/regime OVERRIDES="$$overrides"
regime-teacher: settings ## the regime's first part alone: its teacher, cut student and capacity floor (notebooks 00-02)
	+@$(REGIME_MAKE) regime-teacher-run
regime: settings ## the paper's regime: one channel per GroupNorm group, the authors' recipe (notebook 08, then 05 again)
	+@$(REGIME_MAKE) regime-run
	+@$(if $(wildcard $(RUN_DIR)/05_results.ipynb),$(SUBMAKE) $(RUN_DIR)/05_results.ipynb,echo \
		"notebook 05 has not run in $(RUN_DIR): make reproduce puts the regime's verdicts into claims.md")

# inside make regime only (its RUN_DIR, FIGURES and OVERRIDES are the regime run's)
regime-teacher-run: settings
	+@$(SUBMAKE) JOBS=1 $(RUN_DIR)/02_pruning.ipynb
regime-run: regime-teacher-run
	+@$(SUBMAKE) -j$(JOBS) $(SWEEP_RESULTS)
	+@$(SUBMAKE) JOBS=1 $(RUN_DIR)/08_regime.ipynb

$(RUN_DIR)/08_regime.ipynb: $(RUN_DIR)/02_pruning.ipynb $(wildcard $(RUN_DIR)/distill/*/results.json)
$(RUN_DIR)/05_results.ipynb: $(wildcard $(RUN_DIR)/regime/08_regime.ipynb)

# STUDY=ablation, authors, grid or trend: that study's jobs instead
STUDY ?=
list-sweep: $(STAMP) ## the sweep's jobs for PROFILE and SEEDS, one per line (STUDY=ablation|authors|grid|trend: a study's)
	@printf '%s\n' $(if $(strip $(STUDY)),$(patsubst $(RUN_DIR)/distill/%/results.json,%,$(call \
		STUDY_RESULTS,$(call study_jobs,$(STUDY)))),$(SWEEP))

# one KD job, e.g. make distill-main_r0.8_s0; done when its results.json exists. The name is
# checked before anything is built for it, and the results are asked for by name (a file make
# reaches only through a pattern is an intermediate one, which it deletes when done)
distill-%: settings
	@$(PY) -m liftkd.stages.sweep check --job $* --profile $(PROFILE) --overrides $(OVERRIDES_ARG)
	+@$(SUBMAKE) $(RUN_DIR)/distill/$*/results.json

$(RUN_DIR)/distill/%/results.json: notebooks/04_distill.ipynb $(RUN_DIR)/02_pruning.ipynb | settings
	@mkdir -p $(@D) $(FIGURES)
	@start=$$(date +%s); \
	$(if $(LAUNCH),$(LAUNCH) -m liftkd.stages.sweep train --profile $(PROFILE) --run-dir $(RUN_DIR) \
		--job $* --overrides $(OVERRIDES_ARG) &&) \
	$(PAPERMILL) $< $(@D)/04_distill.partial.ipynb -p PROFILE $(PROFILE) -p RUN_DIR $(RUN_DIR) \
		-p FIGURES_DIR $(FIGURES) -p JOB $* -p THREADS $(THREADS) -y $(OVERRIDES_YAML) \
	&& mv $(@D)/04_distill.partial.ipynb $(@D)/04_distill.ipynb \
	&& echo "04_distill $* ($(PROFILE)): $$(( $$(date +%s) - start )) s" | tee -a $(RUN_DIR)/timings.txt

# one executed notebook per source notebook; an interrupted run leaves no executed copy behind
$(RUN_DIR)/%.ipynb: notebooks/%.ipynb | settings
	@mkdir -p $(RUN_DIR) $(FIGURES)
	@start=$$(date +%s); \
	$(PAPERMILL) $< $@.partial.ipynb -p PROFILE $(PROFILE) -p RUN_DIR $(RUN_DIR) -p FIGURES_DIR $(FIGURES) \
		$(if $(filter $(EXECUTED),$@),-p THREADS $(THREADS)) -y $(OVERRIDES_YAML) \
	&& mv $@.partial.ipynb $@ \
	&& echo "$* ($(PROFILE)): $$(( $$(date +%s) - start )) s" | tee -a $(RUN_DIR)/timings.txt

# each notebook reads what the one before it wrote (classifier, teacher, students)
$(RUN_DIR)/01_teacher.ipynb: $(RUN_DIR)/00_feature_extractor.ipynb
$(RUN_DIR)/02_pruning.ipynb: $(RUN_DIR)/01_teacher.ipynb
$(RUN_DIR)/03_error_decomposition.ipynb: $(RUN_DIR)/02_pruning.ipynb
# 05 reads every job result the sweep has saved (make reproduce runs the whole sweep first); a job
# redone since 05 ran makes it run again
$(RUN_DIR)/05_results.ipynb: $(RUN_DIR)/03_error_decomposition.ipynb \
	$(wildcard $(RUN_DIR)/distill/*/results.json)

# claim 7's other backbones: in make reproduce after the sweep (the two at once), and each alone
# through its own target; 05 reads their results when they exist
# (notebook 00 is built here, once: make -j2 dit latent would otherwise train it in both sub-makes)
dit: settings $(RUN_DIR)/00_feature_extractor.ipynb ## the DiT path (notebook 06): DiT teacher, TinyFusion student, its KD recipe vs LIFT+PLACE
	+@$(SUBMAKE) $(RUN_DIR)/06_dit.ipynb

latent: settings $(RUN_DIR)/00_feature_extractor.ipynb ## the latent path (notebook 07): autoencoder, latent U-Net, BK-SDM student, recipe vs LIFT+PLACE
	+@$(SUBMAKE) $(RUN_DIR)/07_latent.ipynb

# both at once share the cores (make -j2 dit latent: THREADS torch threads each)
BACKBONES := $(RUN_DIR)/06_dit.ipynb $(RUN_DIR)/07_latent.ipynb
$(BACKBONES): $(RUN_DIR)/%.ipynb: notebooks/%.ipynb $(RUN_DIR)/00_feature_extractor.ipynb | settings
	@mkdir -p $(RUN_DIR) $(FIGURES)
	@start=$$(date +%s); \
	$(PAPERMILL) $< $@.partial.ipynb -p PROFILE $(PROFILE) -p RUN_DIR $(RUN_DIR) -p FIGURES_DIR $(FIGURES) \
		-p THREADS $(THREADS) -y $(OVERRIDES_YAML) \
	&& mv $@.partial.ipynb $@ \
	&& echo "$* ($(PROFILE)): $$(( $$(date +%s) - start )) s" | tee -a $(RUN_DIR)/timings.txt
$(RUN_DIR)/05_results.ipynb: $(wildcard $(RUN_DIR)/06_dit.ipynb $(RUN_DIR)/07_latent.ipynb)

# the teaching notebook: needs no other notebook, trains its own tiny teacher (about a minute)
TUTORIAL_DIR ?= runs/tutorial
tutorial: $(STAMP) ## the notebook that teaches the moment decomposition, run into TUTORIAL_DIR
	@mkdir -p $(TUTORIAL_DIR)
	$(PAPERMILL) notebooks/tutorial_moment_decomposition.ipynb \
		$(TUTORIAL_DIR)/tutorial_moment_decomposition.ipynb \
		-p RUN_DIR $(TUTORIAL_DIR) -p FIGURES_DIR $(TUTORIAL_DIR)/figures

# two pytest workers: most tests wait on a subprocess or a notebook's imports, so two share the
# cores well. worksteal: while one worker runs the smoke run's checks (one long test, started
# first), the other takes the tests queued behind it
TEST_WORKERS ?= 2
test: $(STAMP) ## ruff (lint, format) and every test, the smoke profile end to end included (what CI runs)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal

unit: $(STAMP) ## the fast tests alone (no command, notebook or training of more than a second)
	$(PY) -m pytest -m "not slow" -n $(TEST_WORKERS) --dist worksteal -q

bench: $(STAMP) ## benchmarks: objective cost per KD step, student sampling latency (figures/bench/)
	$(PY) -m liftkd.measure.bench --out figures/bench

lint: $(STAMP) ## fix what ruff can fix, and format
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

lab: $(STAMP) ## JupyterLab on the notebooks
	$(PY) -m jupyter lab notebooks

# only a folder inside runs/ (never runs/ itself, the project, or a folder above it)
clean-runs: ## delete the run folder of RUN_NAME (checkpoints, executed notebooks)
	@d=$$(realpath -m -- '$(subst ','\'',$(RUN_DIR))'); r=$$(realpath -m runs); \
	case "$$d" in \
	"$$r"/?*) echo "deleting $$d"; rm -rf -- "$$d" ;; \
	*) echo "error: clean-runs deletes a run folder inside $$r; '$(RUN_DIR)' is $$d," \
		"not one (delete it yourself if you mean it)" >&2; exit 2 ;; \
	esac

clean: ## delete every run folder and the environment
	rm -rf runs $(VENV)
