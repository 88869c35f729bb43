"""Run logging: rich console (progress per epoch, results tables), metrics.jsonl, DeepSpeed's monitors."""
from __future__ import annotations

import json
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

console = Console()


def write_experiment(exp_dir: Path, config: dict) -> None:
    """`config.yaml`: the run's whole config (RunConfig.as_dict()), a file `--config` reads back."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, disable=not enabled, transient=False)


class RunLog:
    """Metrics to `metrics.jsonl` and to DeepSpeed's TensorBoard / CSV / wandb monitors (rank 0 only)."""

    def __init__(self, exp_dir: Path, monitor, is_main: bool):
        self.path = exp_dir / "metrics.jsonl"
        self.monitor, self.is_main = monitor, is_main
        self.started = time.time()

    def record(self, kind: str, step: int, values: dict) -> None:
        if not self.is_main:
            return
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"kind": kind, "step": step, "time": round(time.time() - self.started, 3),
                                     **values}) + "\n")
        if self.monitor is not None and self.monitor.enabled:
            events = [(f"{kind}/{name}", float(value), step) for name, value in values.items()
                      if isinstance(value, (int, float))]
            self.monitor.write_events(events)


def results_table(title: str, metrics: dict) -> Table:
    table = Table(title=title)
    for column in ("top-1", "top-5", "mean class acc", "videos"):
        table.add_column(column, justify="right")
    table.add_row(f"{metrics['top1']:.2f}", f"{metrics['top5']:.2f}", f"{metrics['mean_class_accuracy']:.2f}",
                  str(metrics["videos"]))
    return table
