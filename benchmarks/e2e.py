"""`e2e`: the real training loop (DeepSpeed engine fed by the DALI loader) for a fixed number of steps.

Runs `training.train.train` in this process on a one-process group, logging every `e2e_warmup` steps,
and reports the trainer's own steady-state rates: clips/s and data wait without the epoch's first
logging window, so pipeline start and the first steps do not count. The shards are listed as many
times as it takes for all steps to fit in one epoch, so no epoch-end checkpoint falls in the timed
window; every read still decodes its clip anew.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.data import BenchmarkError, repeated_manifest
from benchmarks.settings import Settings
from benchmarks.trainer import run_values, training_config


def run(settings: Settings, shards) -> dict:
    if settings.e2e_warmup >= settings.e2e_steps:
        raise BenchmarkError(f"--e2e-warmup ({settings.e2e_warmup}) must be below --e2e-steps ({settings.e2e_steps})")
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as exp_dir:
        exp_dir = Path(exp_dir)
        train_shards, repeats = repeated_manifest(shards, settings.e2e_steps * settings.run.data.batch_size, exp_dir)
        config = training_config(settings, train_shards, exp_dir / "run", print_freq=settings.e2e_warmup)
        from training.engine import init_distributed
        from training.train import train

        dist = init_distributed()
        started = time.perf_counter()
        summary = train(config, dist, max_steps=settings.e2e_steps)
        wall = time.perf_counter() - started
    steady = summary["steady"]
    if steady is None:
        raise BenchmarkError(f"the trainer logged no window after its first one in {settings.e2e_steps} steps "
                             f"(logging every {settings.e2e_warmup})")
    return {"status": "ok", "clips_per_s": steady["clips_per_s"], "data_wait_pct": steady["data_wait_pct"],
            "steady": steady, "steps": int(summary["steps"]), "wall_s": wall, "shard_repeats": repeats,
            "whole_run": {"clips_per_s": summary["clips_per_s"], "data_wait_pct": summary["data_wait_pct"]},
            "run_config": run_values("<shards>", "<temporary folder>", settings.e2e_warmup)}
