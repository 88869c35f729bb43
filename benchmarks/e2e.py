"""`e2e`: the real training loop (DeepSpeed engine fed by the DALI loader) for a fixed number of steps.

Runs `training.train.train` in this process on a one-process group and reads its per-step log
(`metrics.jsonl`, written every `e2e_warmup` steps) for the steady state: clips/s and data wait between
the first logged step and the last, so pipeline start and the first steps do not count. The shards are
listed as many times as it takes for all steps to fit in one epoch, so no epoch-end checkpoint falls in
the timed window; every read still decodes its clip anew.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from benchmarks.data import BenchmarkError, repeated_manifest
from benchmarks.settings import Settings
from benchmarks.trainer import overrides, training_config

# Summary keys the trainer promises; the section keeps its other scalar values as well.
REQUIRED_KEYS = ("clips_per_s", "data_wait_pct", "steps")


def steady_state(metrics_path: Path, batch_size: int) -> dict:
    """clips/s and data-wait % between the first and the last logged training step."""
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    rows = [row for row in rows if row.get("kind") == "train"]
    if len(rows) < 2 or not all({"step", "time", "clips_per_s", "data_wait_pct"} <= set(row) for row in rows):
        raise BenchmarkError(f"{metrics_path}: expected train rows with step, time, clips_per_s and data_wait_pct "
                             f"from at least two logged steps, got {len(rows)} rows")
    first, last = rows[0], rows[-1]
    clips = (last["step"] - first["step"]) * batch_size
    seconds = last["time"] - first["time"]
    # Within one epoch the trainer logs running totals from the epoch start: elapsed = clips / rate.
    elapsed = [row["step"] * batch_size / row["clips_per_s"] for row in (first, last)]
    waited = [row["data_wait_pct"] / 100 * span for row, span in zip((first, last), elapsed)]
    return {"clips_per_s": clips / seconds, "data_wait_pct": 100 * (waited[1] - waited[0]) / (elapsed[1] - elapsed[0]),
            "from_step": first["step"], "to_step": last["step"], "seconds": seconds}


def run(settings: Settings, shards) -> dict:
    if settings.e2e_warmup >= settings.e2e_steps:
        raise BenchmarkError(f"--e2e-warmup ({settings.e2e_warmup}) must be below --e2e-steps ({settings.e2e_steps})")
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as exp_dir:
        exp_dir = Path(exp_dir)
        train_shards, repeats = repeated_manifest(shards, settings.e2e_steps * settings.batch_size, exp_dir)
        log_every = [f"logging.print_freq={settings.e2e_warmup}"]
        config = training_config(settings, train_shards, exp_dir / "run", log_every)
        from training.engine import init_distributed
        from training.train import train

        dist = init_distributed()
        started = time.perf_counter()
        summary = train(config, dist, max_steps=settings.e2e_steps)
        wall = time.perf_counter() - started
        steady = steady_state(exp_dir / "run" / "metrics.jsonl", settings.batch_size)
    absent = [key for key in REQUIRED_KEYS if key not in summary]
    if absent:
        raise BenchmarkError(f"training.train returned no {absent} (got {sorted(summary)})")
    return {"status": "ok", "clips_per_s": steady["clips_per_s"], "data_wait_pct": steady["data_wait_pct"],
            "steady": steady, "steps": int(summary["steps"]), "wall_s": wall, "shard_repeats": repeats,
            "whole_run": {"clips_per_s": float(summary["clips_per_s"]),
                          "data_wait_pct": float(summary["data_wait_pct"])},
            "overrides": overrides(settings, "<shards>", "<temporary folder>") + log_every}
