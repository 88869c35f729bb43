"""`python -m training.report_table --curves`: val top-1 per epoch from the rows the trainer's RunLog writes."""
from __future__ import annotations

from pathlib import Path

from training.logs import RunLog
from training.report_table import main as report_table


def logged_run(log: RunLog, first_epoch: int, scores: list[float], resumed: bool) -> None:
    """Rows as train() writes them: a start row, then per epoch a data row and a val row."""
    step = (first_epoch - 1) * 10
    log.record("start", step, {"epoch": first_epoch, "resumed": resumed})
    for epoch, top1 in enumerate(scores, start=first_epoch):
        log.record("data", step, {"epoch": epoch})
        step += 10
        log.record("train", step, {"loss": 1.0, "epoch": epoch})
        log.record("val", step, {"epoch": epoch, "top1": top1, "top5": 100.0})


def test_curves_follow_the_last_fresh_run_and_its_resumes(tmp_path: Path, capsys) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    log = RunLog(first, None, is_main=True)
    logged_run(log, 1, [50.0, 60.0, 70.0], resumed=False)  # an earlier run, then a start over in the same folder
    logged_run(log, 1, [10.0, 20.0], resumed=False)
    logged_run(log, 2, [25.0, 40.0], resumed=True)  # resumed from epoch 1: epoch 2 logged again, the last counts
    logged_run(RunLog(second, None, is_main=True), 1, [30.0, 90.5], resumed=False)
    out = tmp_path / "curves.md"
    assert report_table(["--curves", str(first), str(second), "--out", str(out)]) == 0
    assert capsys.readouterr().out == out.read_text()
    assert out.read_text().splitlines() == [
        f"| epoch | {first} | {second} |", "| ---: | ---: | ---: |",
        "| 1 | 10.0 | 30.0 |", "| 2 | 25.0 | 90.5 |", "| 3 | 40.0 | – |", "| best | 40.0 | 90.5 |"]


def test_a_folder_without_val_rows_is_named(tmp_path: Path, capsys) -> None:
    log = RunLog(tmp_path, None, is_main=True)
    log.record("start", 0, {"epoch": 1, "resumed": False})
    assert report_table(["--curves", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'metrics.jsonl'} has no val rows: train with "
                                       "data.val_shards set\n")
    assert report_table(["--curves", str(tmp_path / "absent")]) == 2
    assert f"error: {tmp_path / 'absent'} holds no metrics.jsonl" in capsys.readouterr().err
    (tmp_path / "metrics.jsonl").write_text('{"kind": "val", "top1": 5.0}\n')
    assert report_table(["--curves", str(tmp_path)]) == 2
    assert "line 1: a val row without its epoch" in capsys.readouterr().err
