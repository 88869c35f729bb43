"""The trainer the step and e2e sections run: the benchmark's training config, set to run without eval or logs.

Both sections use the training code itself (process group, model, prompts, DeepSpeed engine), so the
step section differs from the real loop only in where the batch comes from.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from training.config import RunConfig, with_values

from benchmarks.settings import Settings


def run_values(shards: Path | str, exp_dir: Path | str, print_freq: int | None = None) -> dict[str, Any]:
    """The training-config keys a benchmark run sets over `Settings.run`: its shards, the DALI loader, no
    validation, no TensorBoard/CSV/W&B logs (`print_freq`: the trainer's logging window)."""
    values = {"data.train_shards": str(shards), "data.val_shards": None, "data.backend": "dali",
              "logging.exp_dir": str(exp_dir), "logging.tensorboard": False, "logging.csv": False,
              "logging.wandb": False}
    return values if print_freq is None else {**values, "logging.print_freq": print_freq}


def training_config(settings: Settings, shards: Path | str, exp_dir: Path | str,
                    print_freq: int | None = None) -> RunConfig:
    return with_values(settings.run, run_values(shards, exp_dir, print_freq), "benchmark run")
