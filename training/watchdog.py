"""A stuck rank names the silent one: heartbeat files per rank, and a watchdog that ends a rank stuck too long.

Each rank's thread writes `<exp_dir>/heartbeats/rank-N.json` every few seconds: where its main thread
is (`mark(phase, step)`: loading data, forward/backward, evaluating, saving a checkpoint) and since
when. The thread keeps beating while its main thread waits inside a collective, but not when the
process is stopped, frozen or gone. When a rank has stayed in one phase longer than
`deepspeed.timeout_minutes`, usually waiting for a rank that stopped answering, it reads every
heartbeat, prints which rank went quiet (or which one is behind) and exits, so the launcher ends the
run instead of it hanging until the backend's own timeout.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

EXIT_STUCK = 3
_current: RankWatch | None = None


class RankWatch:
    def __init__(self, folder: Path, rank: int, world_size: int, timeout_s: float) -> None:
        self.folder, self.rank, self.world_size, self.timeout_s = folder, rank, world_size, timeout_s
        # Beat often enough that a rank silent for a tenth of the timeout is told apart from a live one.
        self.beat_s = min(5.0, timeout_s / 10)
        self.phase, self.step, self.since = "start", 0, time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rank-watchdog", daemon=True)

    def mark(self, phase: str, step: int | None) -> None:
        self.phase, self.since = phase, time.time()
        self.step = self.step if step is None else step

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _path(self, rank: int) -> Path:
        return self.folder / f"rank-{rank}.json"

    def _write(self) -> None:
        beat = {"rank": self.rank, "pid": os.getpid(), "host": socket.gethostname(), "phase": self.phase,
                "step": self.step, "since": self.since, "beat": time.time()}
        temporary = self._path(self.rank).with_suffix(".tmp")
        temporary.write_text(json.dumps(beat))
        temporary.replace(self._path(self.rank))

    def _run(self) -> None:
        while not self._stop.wait(self.beat_s):
            self._write()
            overdue = time.time() - self.since - self.timeout_s
            if overdue <= 0:
                continue
            quiet, diagnosis = self.diagnosis()
            # A rank that stopped just now still looks alive for a few beats: give it a second timeout to show.
            if quiet or overdue > self.timeout_s:
                print(f"error: {diagnosis}", file=sys.stderr, flush=True)
                os._exit(EXIT_STUCK)

    def peers(self) -> list[dict]:
        beats = []
        for rank in range(self.world_size):
            try:
                beats.append(json.loads(self._path(rank).read_text()))
            except (OSError, ValueError):
                beats.append({"rank": rank, "beat": None})
        return beats

    def diagnosis(self) -> tuple[bool, str]:
        """(whether a rank stopped answering, which rank this one is waiting for as one line), from the heartbeats."""
        now, minutes = time.time(), self.timeout_s / 60
        waiting = f"rank {self.rank} spent over {minutes:g} min in step {self.step} ({self.phase})"
        others = [beat for beat in self.peers() if beat["rank"] != self.rank]
        quiet = [beat for beat in others if beat["beat"] is None or now - beat["beat"] > 3 * self.beat_s]
        if quiet:
            named = "; ".join(_describe(beat, now) for beat in quiet)
            return True, (f"{waiting}, waiting for a rank that stopped answering: {named}. Its log says why; set "
                          "deepspeed.timeout_minutes higher if a step legitimately takes this long")
        behind = min(others, key=lambda beat: (beat["step"], beat["since"]), default=None)
        if behind is None or behind["step"] >= self.step:
            return False, f"{waiting}; every other rank is alive and as far: this rank itself is stuck"
        return False, f"{waiting}; every rank is alive, the furthest behind is {_describe(behind, now)}"


def _describe(beat: dict, now: float) -> str:
    if beat["beat"] is None:
        return f"rank {beat['rank']} (no heartbeat file)"
    return (f"rank {beat['rank']} (pid {beat['pid']} on {beat['host']}), last heard {now - beat['beat']:.0f} s ago "
            f"in step {beat['step']} ({beat['phase']})")


@contextlib.contextmanager
def watching(exp_dir: Path, rank: int, world_size: int, timeout_minutes: float):
    """Watch this rank while the block runs, in a multi-rank run (a single process has nobody to wait for)."""
    global _current
    if world_size < 2:
        yield
        return
    _current = RankWatch(exp_dir / "heartbeats", rank, world_size, timeout_minutes * 60)
    _current.start()
    try:
        yield
    finally:
        _current.stop()
        _current = None


def mark(phase: str, step: int | None = None) -> None:
    """Where this rank's main thread is now (`step` None: the same training step); a no-op without a watch."""
    if _current is not None:
        _current.mark(phase, step)
