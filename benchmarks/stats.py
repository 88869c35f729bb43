"""Summaries of repeated measurements, and the timers and CPU budget the sections share."""
from __future__ import annotations

import contextlib
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Iterator, Sequence

import torch

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def summarize(values: Sequence[float], unit: str) -> dict:
    """Median, min, max and spread ((max - min) / median, in %) of repeated measurements."""
    if not values:
        raise ValueError("no measurements to summarize")
    median = statistics.median(values)
    spread = 100.0 * (max(values) - min(values)) / median if median > 0 else 0.0
    return {"median": median, "min": min(values), "max": max(values), "spread_pct": spread,
            "repeats": len(values), "values": list(values), "unit": unit}


def cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of all its child processes, running or exited.

    Exited children count once reaped (getrusage); running ones, such as DALI's source workers that live
    as long as their pipeline, are read from /proc (in clock ticks), so a difference of two readings holds
    their work too.
    """
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime + _running_children_seconds()


def _running_children_seconds() -> float:
    """utime + stime of every running descendant, plus what its own exited children used (cutime + cstime)."""
    ticks, pending = 0, _children(Path("/proc/self"))
    while pending:
        pid = pending.pop()
        try:
            fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # it exited between the listing and the read
        ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
        pending += _children(Path("/proc") / str(pid))
    return ticks / CLOCK_TICKS


def _children(process: Path) -> list[int]:
    pids = []
    for task in process.glob("task/*"):
        try:
            pids += [int(pid) for pid in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids


@contextlib.contextmanager
def cpu_budget(cpus: int | None) -> Iterator[list[int]]:
    """Restrict this process (and the workers and threads it starts) to its first `cpus` cores."""
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed if cpus is None else allowed[:cpus]
    os.sched_setaffinity(0, chosen)
    try:
        yield chosen
    finally:
        os.sched_setaffinity(0, allowed)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer read after it covers that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator
