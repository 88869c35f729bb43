"""Summaries of repeated measurements, and the timer the sections share."""
from __future__ import annotations

import os
import statistics
from typing import Sequence

import torch


def summarize(values: Sequence[float], unit: str) -> dict:
    """Median, min, max and spread ((max - min) / median, in %) of repeated measurements."""
    if not values:
        raise ValueError("no measurements to summarize")
    median = statistics.median(values)
    spread = 100.0 * (max(values) - min(values)) / median if median > 0 else 0.0
    return {"median": median, "min": min(values), "max": max(values), "spread_pct": spread,
            "repeats": len(values), "values": list(values), "unit": unit}


def cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of its children that have exited and been reaped."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer read after it covers that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator
