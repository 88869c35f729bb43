"""The trainer's throughput meter: per-window rates, and steady rates without each epoch's first window."""
from __future__ import annotations

import pytest

from training import metrics
from training.metrics import Throughput


def test_windows_report_their_own_rates_and_steady_leaves_out_epoch_starts(monkeypatch):
    clock = iter([0.0,  # meter created
                  0.0, 10.0, 12.0, 14.0,  # epoch 1: start, then three windows
                  20.0, 30.0, 32.0])  # epoch 2: start, then two windows
    monkeypatch.setattr(metrics.time, "perf_counter", lambda: next(clock))
    meter = Throughput(world_size=2)
    meter.start_epoch()
    meter.step(4, waited=8.0)  # the first window: pipeline start, 10 s
    assert meter.close_window(1) == {"clips_per_s": pytest.approx(0.8), "data_wait_pct": pytest.approx(80.0)}
    for step in (2, 3):
        meter.step(4, waited=0.5)
        assert meter.close_window(step) == {"clips_per_s": pytest.approx(4.0), "data_wait_pct": pytest.approx(25.0)}
    meter.start_epoch()
    meter.step(4, waited=9.0)
    meter.close_window(4)
    meter.step(4, waited=1.0)
    meter.close_window(5)
    summary = meter.summary()
    assert summary["clips_per_s"] == pytest.approx(5 * 4 * 2 / 26.0)
    assert summary["data_wait_pct"] == pytest.approx(100 * 19.0 / 26.0)
    steady = summary["steady"]
    assert (steady["steps"], steady["seconds"], steady["from_step"], steady["to_step"]) == (3, 6.0, 1, 5)
    assert steady["clips_per_s"] == pytest.approx(3 * 4 * 2 / 6.0)
    assert steady["data_wait_pct"] == pytest.approx(100 * 2.0 / 6.0)


def test_a_run_of_first_windows_only_has_no_steady_rate():
    meter = Throughput(world_size=1)
    meter.start_epoch()
    meter.step(2, waited=0.0)
    meter.close_window(1)
    assert meter.summary()["steady"] is None
