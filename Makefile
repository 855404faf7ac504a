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
	$(BIN)/pip install -q -e ".[train,dev,link]"
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

# Retrain every shipped policy from its committed recipe (1 torch thread each; measured times in the
# README): the anticipate MLE prior and its PPO policy, the follow MLE prior and the follow PPO default,
# each exported with its eval row on the test split (greedy decoding); then the style VAE and the
# style-conditioned policy warm-started from the follow MLE prior (export/style.onnx, moods and axes); then the
# SATB band: its MLE prior, the PPO band and the anticipating band, and the band table on the test split.
policy: $(STAMP)
	$(BIN)/liveagent train mle --config export/mle.toml --out runs/mle
	$(BIN)/liveagent export runs/mle/best.pt -o export/mle.onnx --eval
	$(BIN)/liveagent train ppo --config export/anticipate.toml --out runs/anticipate
	$(BIN)/liveagent export runs/anticipate/last.pt -o export/anticipate.onnx --eval
	$(BIN)/liveagent train mle --config export/follow_mle.toml --out runs/follow_mle
	$(BIN)/liveagent export runs/follow_mle/best.pt -o export/follow_mle.onnx --eval
	$(BIN)/liveagent train ppo --config export/default.toml --out runs/default
	$(BIN)/liveagent export runs/default/last.pt -o export/default.onnx --eval
	$(BIN)/liveagent train vae --config export/recipes/style_vae.toml --out runs/style_vae
	$(BIN)/liveagent train style --config export/style.toml --out runs/style
	$(BIN)/liveagent export runs/style/best.pt -o export/style.onnx --eval
	$(BIN)/liveagent train band_mle --config export/band_mle.toml --out runs/band_mle
	$(BIN)/liveagent export runs/band_mle/best.pt -o export/band_mle.onnx
	$(BIN)/liveagent train band_ppo --config export/band.toml --out runs/band
	$(BIN)/liveagent export runs/band/last.pt -o export/band.onnx
	$(BIN)/liveagent train band_mle --config export/band_anticipate.toml --out runs/band_anticipate
	$(BIN)/liveagent export runs/band_anticipate/best.pt -o export/band_anticipate.onnx
	$(BIN)/liveagent eval --band satb --policy random bach band_mle band band_anticipate

bench: $(STAMP)
	$(BIN)/liveagent bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
