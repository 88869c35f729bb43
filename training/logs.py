"""Run logging: rich console (progress per epoch, results tables), metrics.jsonl, DeepSpeed's monitors."""
from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from training.config import ConfigError

# Lines are never wrapped: a path or a summary cut at 80 columns in a log file cannot be searched for.
console = Console(soft_wrap=True)


def require_monitors(wandb: bool) -> None:
    """Fail at start-up, not at the engine's first log, when a configured monitor is not installed."""
    if wandb and importlib.util.find_spec("wandb") is None:
        raise ConfigError("logging.wandb is true but wandb is not installed: pip install -e '.[wandb]' and "
                          "`wandb login`, or set logging.wandb: false")


def write_experiment(exp_dir: Path, config: dict) -> None:
    """`config.yaml`: the run's whole config (RunConfig.as_dict()), a file `--config` reads back."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    (exp_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def progress_bar(enabled: bool) -> Progress | LineProgress:
    """A live progress bar on a terminal; in a log file or pipe, plain lines (a bar redrawn there is unreadable)."""
    if not console.is_terminal:
        return LineProgress(enabled)
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, disable=not enabled, transient=False)


class LineProgress:
    """The part of rich's Progress the trainer uses, written as one full line per status update and one when
    a task ends: `epoch 3/12  40/62  loss 0.4123  lr 1.00e-03  58.1 clips/s  wait 1%  0:00:12`."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tasks: dict[int, dict] = {}

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.tasks.clear()

    def add_task(self, description: str, total: int, status: str = "") -> int:
        task = len(self.tasks)
        self.tasks[task] = {"description": description, "total": total, "done": 0, "started": time.perf_counter()}
        return task

    def advance(self, task: int) -> None:
        self.tasks[task]["done"] += 1

    def update(self, task: int, status: str) -> None:
        self._line(self.tasks[task], status)

    def remove_task(self, task: int) -> None:
        self._line(self.tasks.pop(task), "done")

    def _line(self, task: dict, status: str) -> None:
        if not self.enabled:
            return
        elapsed = time.strftime("%H:%M:%S", time.gmtime(time.perf_counter() - task["started"]))
        console.print(f"{task['description']}  {task['done']}/{task['total']}  {status}  {elapsed}", highlight=False,
                      markup=False)


class RunLog:
    """Metrics to `metrics.jsonl` and to DeepSpeed's TensorBoard / CSV / wandb monitors (rank 0 only)."""

    def __init__(self, exp_dir: Path, monitor, is_main: bool):
        self.path = exp_dir / "metrics.jsonl"
        self.monitor, self.is_main = monitor, is_main
        self.started = time.time()

    def record(self, kind: str, step: int, values: dict, labels: dict | None = None) -> None:
        """A `kind` row of measured `values` (plotted by the monitors too) and `labels` that only say where the
        row belongs (its epoch, whether a run resumed): those go to metrics.jsonl alone."""
        if not self.is_main:
            return
        with open(self.path, "a") as handle:
            handle.write(json.dumps({"kind": kind, "step": step, "time": round(time.time() - self.started, 3),
                                     **(labels or {}), **values}) + "\n")
        if self.monitor is not None and self.monitor.enabled:
            events = [(f"{kind}/{name}", float(value), step) for name, value in values.items()
                      if isinstance(value, (int, float))]
            self.monitor.write_events(events)


def results_table(title: str, metrics: dict) -> Table:
    """top-1, top-5, mean class accuracy (and mAP for a multi-label split) and the number of videos."""
    columns = {"top-1": "top1", "top-5": "top5", "mean class acc": "mean_class_accuracy", "mAP": "mAP"}
    shown = {name: key for name, key in columns.items() if key in metrics}
    table = Table(title=title)
    for column in (*shown, "videos"):
        table.add_column(column, justify="right")
    table.add_row(*(f"{metrics[key]:.2f}" for key in shown.values()), str(metrics["videos"]))
    return table
