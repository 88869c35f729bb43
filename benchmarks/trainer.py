"""The trainer the step and e2e sections run: its config with the benchmark's sizes written over it.

Both sections use the training code itself (process group, model, prompts, DeepSpeed engine), so the
step section differs from the real loop only in where the batch comes from.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

from benchmarks.data import BenchmarkError
from benchmarks.settings import Settings

TRAINER_MODULES = ("training.config", "training.engine", "training.components", "training.train")


def require_trainer() -> None:
    for module in TRAINER_MODULES:
        if importlib.util.find_spec(module) is None:
            raise BenchmarkError(f"trainer not available: module {module} is missing from this checkout")


def overrides(settings: Settings, shards: Path | str, exp_dir: Path | str) -> list[str]:
    """`--set`-style overrides that make the training run match the benchmark settings (no eval, no logs)."""
    return [f"data.train_shards={shards}", "data.val_shards=null", f"data.batch_size={settings.batch_size}",
            f"data.num_segments={settings.num_frames}", f"data.input_size={settings.input_size}",
            f"data.workers={settings.threads}", f"data.prefetch={settings.prefetch}", "data.backend=dali",
            f"network.arch={settings.arch}", f"network.pretrained={settings.pretrained}",
            f"network.sim_header={settings.sim_header}", f"deepspeed.precision={settings.precision}",
            f"seed={settings.seed}", f"logging.exp_dir={exp_dir}", "logging.tensorboard=false", "logging.csv=false",
            "logging.wandb=false"]


def training_config(settings: Settings, shards: Path | str, exp_dir: Path | str, extra: Sequence[str] = ()) -> dict:
    require_trainer()
    from training.config import load_config

    return load_config(settings.config, overrides(settings, shards, exp_dir) + list(extra))
