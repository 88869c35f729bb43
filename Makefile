# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv on first use and install the pinned dependencies from pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= data/demo
SEED ?= 0

.PHONY: demo test venv clean-demo

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Synthetic motion videos -> verified VP9 shards -> train a tiny CLIP + Transf head on CPU -> multi-view test.
demo: $(STAMP)
	$(PY) -m shard_tools synth --out $(DEMO_DIR)/raw --seed $(SEED) --train-per-class 100 --val-per-class 20 \
		--test-per-class 0 --size 72 80 --frames 24 40 --workers 2
	$(PY) -m shard_tools build-shards --format csv --annotations $(DEMO_DIR)/raw/annotations.csv \
		--labels $(DEMO_DIR)/raw/labels.csv --root $(DEMO_DIR)/raw --name synth --out $(DEMO_DIR)/shards \
		--short-side 72 --workers 2 --seed $(SEED)
	$(PY) -m shard_tools verify $(DEMO_DIR)/shards
	$(PY) -m shard_tools inspect $(DEMO_DIR)/shards
	rm -rf runs/demo
	$(PY) launch.py --config configs/demo.yaml
	$(PY) launch.py test --config configs/demo.yaml
	@echo "demo: checkpoint runs/demo/checkpoints/best.pt, logs runs/demo/metrics.jsonl (+ tensorboard/, csv/),"
	@echo "      results runs/demo/results-test.json, shards $(DEMO_DIR)/shards"

test: $(STAMP)
	$(PY) -m pytest -q -ra tests

clean-demo:
	rm -rf $(DEMO_DIR)
