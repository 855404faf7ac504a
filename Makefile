# Two commands a fresh machine needs: `make demo` (the main job) and `make test` (everything).
# Each creates .venv if missing. torch is pinned to the local CPU wheel (torch==2.13.0).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint typecheck unit policy bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[train,dev]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/liveagent demo

lint: $(STAMP)
	$(BIN)/ruff check liveagent tests benchmarks export patches
	$(BIN)/ruff format --check liveagent tests benchmarks export patches

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q

test: lint typecheck unit

# Retrain the shipped default policy from its committed recipe: the MLE prior, then PPO with a KL leash
# to it (~8-9 min on these 2-core machines), then export it with its eval row.
policy: $(STAMP)
	$(BIN)/liveagent train mle --config export/default.toml --out runs/default
	$(BIN)/liveagent train ppo --config export/default.toml --out runs/default_ppo
	$(BIN)/liveagent export runs/default_ppo/last.pt -o export/default.onnx --eval

bench: $(STAMP)
	$(BIN)/liveagent bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
