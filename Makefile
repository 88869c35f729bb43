# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv on first use and install the pinned dependencies from pyproject.toml.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SEED ?= 0
# Each seed's videos and shards in their own folder: a build refuses a folder built with other inputs.
DEMO_DIR ?= $(if $(filter 0,$(SEED)),data/demo,data/demo-seed$(SEED))
DEMO_DATA := --set data.train_shards=$(DEMO_DIR)/shards/synth-train.manifest.json \
	--set data.val_shards=$(DEMO_DIR)/shards/synth-val.manifest.json --set data.labels=$(DEMO_DIR)/raw/labels.csv

.PHONY: demo demo-shards demo-seeds test venv clean-demo

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Synthetic motion videos -> verified VP9 shards -> train a tiny CLIP + Transf head on CPU -> multi-view test.
# SEED seeds all of it: the videos, the shard build and training (`make demo SEED=3`).
demo: demo-shards
	rm -rf runs/demo
	$(PY) launch.py --config configs/demo.yaml $(DEMO_DATA) --set seed=$(SEED)
	$(PY) launch.py test --config configs/demo.yaml $(DEMO_DATA)
	@echo "demo: checkpoint runs/demo/checkpoints/best.pt, logs runs/demo/metrics.jsonl (+ tensorboard/, csv/),"
	@echo "      results runs/demo/results-test.json, shards $(DEMO_DIR)/shards"

demo-shards: $(STAMP)
	$(PY) -m shard_tools synth --out $(DEMO_DIR)/raw --seed $(SEED) --train-per-class 100 --val-per-class 20 \
		--test-per-class 0 --size 72 80 --frames 24 40 --workers 2
	$(PY) -m shard_tools build-shards --format csv --annotations $(DEMO_DIR)/raw/annotations.csv \
		--labels $(DEMO_DIR)/raw/labels.csv --root $(DEMO_DIR)/raw --name synth --out $(DEMO_DIR)/shards \
		--short-side 72 --workers 2 --seed $(SEED)
	$(PY) -m shard_tools verify $(DEMO_DIR)/shards
	$(PY) -m shard_tools inspect $(DEMO_DIR)/shards

# The demo recipe once per training seed on the shards of SEED (about 5 minutes each on 2 cores), then their
# learning curves as one table: runs/demo-seeds.md.
DEMO_SEEDS ?= 0 1 2 3 4
demo-seeds: demo-shards
	for seed in $(DEMO_SEEDS); do \
		$(PY) launch.py --config configs/demo.yaml $(DEMO_DATA) --set seed=$$seed \
			--set logging.exp_dir=runs/demo-seed$$seed --overwrite || exit 1; \
	done
	$(PY) -m training.report_table --curves $(addprefix runs/demo-seed,$(DEMO_SEEDS)) --out runs/demo-seeds.md

test: $(STAMP)
	$(PY) -m pytest -q -ra tests

clean-demo:
	rm -rf $(DEMO_DIR)
