# Two commands a new user needs: `make run` and `make test`. Each sets up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export DAGSTER_HOME := $(CURDIR)/.dagster
export DAGSTER_DISABLE_TELEMETRY := 1

.PHONY: setup run paper test test-fast ui bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements.lock
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[models,ray,dev]'
	$(BIN)/pip check
	touch $@

# Build the default dataset with DVC (each stage materializes its Dagster asset), then record
# in the instance the stages DVC restored from its run-cache (no Dagster run for those).
run: setup
	$(BIN)/dvc repro
	$(BIN)/dreamframe observe
	$(BIN)/dreamframe summary

# Paper scale as a DVC experiment (README "Paper scale"): 1,000 offline themes, the paper's
# 11 substories x 11 tinystories with one keyframe each, 128 px frames: over 100,000 QA pairs.
PAPER := -S movie_plots.themes_file=themes_paper.txt -S 'movie_plots.themes=[]' \
	-S movie_plots.substories=11 -S movie_plots.tinystories=11 -S movie_plots.frames=1 \
	-S keyframes.width=128 -S keyframes.height=128
paper: setup
	test -f themes_paper.txt || $(BIN)/dreamframe themes --count 1000 --out themes_paper.txt
	$(BIN)/dvc exp run $(PAPER)
	$(BIN)/dreamframe observe
	$(BIN)/dreamframe summary

# Every test (what CI runs): the unit tests, then the integration tests that build
# the dataset through Dagster, DVC, the CLI and the UI.
test: setup
	$(BIN)/python -m pytest -n 2

# The unit tests only (no Dagster runs, no subprocesses): what to run while editing.
# One process: starting a second worker (torch, dagster, the embedding model) costs
# more than it saves here.
test-fast: setup
	$(BIN)/python -m pytest -n 0 -m "not integration"

# The Dagster UI on loopback; it reads the same instance `make run` writes to.
ui: setup
	DREAMFRAME_ROOT=$(CURDIR) $(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

bench: run
	$(BIN)/python bench/bench_pipeline.py
	$(BIN)/python bench/bench_llm.py
	$(BIN)/python bench/bench_diffusion.py
	$(BIN)/python bench/bench_eval.py
	$(BIN)/python bench/bench_movies.py
	$(BIN)/python bench/bench_scale.py

clean:
	rm -rf data .dreamframe
