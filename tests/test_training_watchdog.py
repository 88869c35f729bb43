"""The watchdog's diagnosis from heartbeat files: the rank that went quiet, else the one furthest behind."""
from __future__ import annotations

import json
import time

from training.watchdog import RankWatch


def beat(folder, rank: int, step: int, age_s: float, phase: str = "forward/backward") -> None:
    now = time.time()
    (folder / f"rank-{rank}.json").write_text(json.dumps({
        "rank": rank, "pid": 100 + rank, "host": "node", "phase": phase, "step": step, "since": now - age_s,
        "beat": now - age_s}))


def test_the_quiet_rank_is_named(tmp_path):
    watch = RankWatch(tmp_path, rank=0, world_size=3, timeout_s=60)
    watch.mark("forward/backward", 7)
    beat(tmp_path, 1, 7, age_s=0.5)
    beat(tmp_path, 2, 6, age_s=90, phase="loading data")
    quiet, message = watch.diagnosis()
    assert quiet and "rank 0 spent over 1 min in step 7 (forward/backward)" in message
    assert "stopped answering: rank 2 (pid 102 on node), last heard 90 s ago in step 6 (loading data)" in message
    assert "rank 1" not in message


def test_all_alive_names_the_rank_behind_or_this_one(tmp_path):
    watch = RankWatch(tmp_path, rank=0, world_size=2, timeout_s=60)
    watch.mark("forward/backward", 7)
    beat(tmp_path, 1, 5, age_s=0.5, phase="loading data")
    quiet, message = watch.diagnosis()
    assert not quiet and "every rank is alive, the furthest behind is rank 1" in message and "step 5" in message
    beat(tmp_path, 1, 7, age_s=0.5)
    assert "this rank itself is stuck" in watch.diagnosis()[1]
    (tmp_path / "rank-1.json").unlink()
    quiet, message = watch.diagnosis()
    assert quiet and "rank 1 (no heartbeat file)" in message
