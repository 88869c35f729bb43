"""What the launch.py end-to-end tests share: small motion shards, the run settings, the launcher, the logs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shard_tools.cli import main as shard_main

REPO = Path(__file__).resolve().parents[1]


def training_shards(root: Path) -> dict:
    """Motion classes (train/val) and held-out compositional classes (zero-shot), as VP9 shards."""
    motion, held_out = root / "motion", root / "compositional"
    assert shard_main(["synth", "--out", str(motion), "--seed", "0", "--train-per-class", "6", "--val-per-class",
                       "2", "--test-per-class", "0", "--size", "64", "--frames", "16", "24", "--workers", "2"]) == 0
    assert shard_main(["build-shards", "--format", "csv", "--annotations", str(motion / "annotations.csv"),
                       "--root", str(motion), "--labels", str(motion / "labels.csv"), "--name", "motion",
                       "--out", str(root / "shards"), "--short-side", "64", "--workers", "2"]) == 0
    # Seen classes have training videos too; only the held-out split is built, with its own label set.
    assert shard_main(["synth", "--out", str(held_out), "--seed", "1", "--labels", "compositional",
                       "--train-per-class", "1", "--val-per-class", "0", "--test-per-class", "0",
                       "--zeroshot-per-class", "1", "--size", "64", "--frames", "16", "--workers", "2"]) == 0
    assert shard_main(["build-shards", "--format", "csv", "--annotations", str(held_out / "annotations.csv"),
                       "--root", str(held_out), "--labels", str(held_out / "labels-zeroshot.csv"),
                       "--split", "zeroshot", "--name", "unseen", "--out", str(root / "shards"),
                       "--short-side", "64", "--workers", "2"]) == 0
    return {"root": root, "train": root / "shards" / "motion-train.manifest.json",
            "val": root / "shards" / "motion-val.manifest.json", "labels": motion / "labels.csv",
            "zeroshot": root / "shards" / "unseen-zeroshot.manifest.json",
            "zeroshot_labels": held_out / "labels-zeroshot.csv"}


def settings(shards: dict, exp_dir: Path, **extra) -> list[str]:
    values = {"data.train_shards": shards["train"], "data.val_shards": shards["val"], "data.labels": shards["labels"],
              "data.num_segments": 4, "data.batch_size": 8, "data.workers": 1,
              "network.sim_header": "Transf", "solver.epochs": 2, "solver.lr": 1e-3, "solver.lr_warmup_step": 1,
              "logging.print_freq": 1, "logging.tensorboard": True, "logging.exp_dir": exp_dir, **extra}
    return [arg for key, value in values.items() for arg in ("--set", f"{key}={value}")]


def launch(*args: str, timeout: int = 300, launcher: list[str] | None = None,
           accelerator: str = "cpu") -> subprocess.CompletedProcess:
    """`launch.py ARGS` in a fresh process; accelerator "cpu" (DeepSpeed on CPU + gloo) or "cuda"."""
    command = (launcher or [sys.executable]) + ["launch.py", *map(str, args)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "DS_ACCELERATOR": accelerator})


def records(exp_dir: Path, kind: str) -> list[dict]:
    lines = (exp_dir / "metrics.jsonl").read_text().splitlines()
    return [entry for entry in map(json.loads, lines) if entry["kind"] == kind]
