"""Training throughput: clips/s and the share of time spent waiting for data, per logging window and per run.

Each logged row reports the window since the previous row, not a running average, so a slow stretch
shows where it happens. An epoch's first window holds the pipeline's start (workers, first decodes);
the run's `steady` rates leave those windows out.
"""
from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Span:
    clips: int = 0
    seconds: float = 0.0
    wait: float = 0.0
    steps: int = 0

    def add(self, other: Span) -> None:
        self.clips += other.clips
        self.seconds += other.seconds
        self.wait += other.wait
        self.steps += other.steps

    def rates(self, world_size: int) -> dict:
        """clips/s over all ranks (every rank reads the same batch size) and this rank's data-wait %."""
        seconds = max(self.seconds, 1e-9)
        return {"clips_per_s": self.clips * world_size / seconds, "data_wait_pct": 100.0 * self.wait / seconds}


class Throughput:
    """Call `start_epoch()`, then `step(clips, waited)` per step and `close_window(step)` at each log point."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.total, self.steady, self.window = Span(), Span(), Span()
        self.steady_steps: tuple[int, int] | None = None  # (step before the first steady window, last step)
        self._window_started = time.perf_counter()
        self._first_window = True

    def start_epoch(self) -> None:
        self._window_started = time.perf_counter()
        self._first_window = True

    def step(self, clips: int, waited: float) -> None:
        self.window.clips += clips
        self.window.wait += waited
        self.window.steps += 1

    def close_window(self, step: int) -> dict:
        """The window's rates (ending at global `step`); the next window starts now."""
        now = time.perf_counter()
        window, self.window = self.window, Span()
        window.seconds, self._window_started = now - self._window_started, now
        self.total.add(window)
        if not self._first_window:
            self.steady.add(window)
            start = step - window.steps if self.steady_steps is None else self.steady_steps[0]
            self.steady_steps = (start, step)
        self._first_window = False
        return window.rates(self.world_size)

    def summary(self) -> dict:
        """Whole-run rates, and `steady` (None when every window was an epoch's first)."""
        steady = None
        if self.steady.steps:
            from_step, to_step = self.steady_steps
            steady = {**self.steady.rates(self.world_size), "steps": self.steady.steps,
                      "seconds": self.steady.seconds, "from_step": from_step, "to_step": to_step}
        return {**self.total.rates(self.world_size), "steady": steady}
