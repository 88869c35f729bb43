"""The results of a set of runs as one Markdown table, laid out as the papers' tables.

    python -m training.report_table runs/a runs/b ... [--out table.md]
    python -m training.report_table --curves runs/a runs/b ...     # val top-1 per epoch, a column per run

Each run folder is read for its `results-test.json` (top-1, top-5, mAP), `results-base-to-novel.json`
(base, novel, HM) and `results-zero-shot.json` (mean ± std of top-1 over its splits and class draws), and
its `config.yaml` (written by training) for the training protocol. A row per run: its folder, arch, frames,
protocol; a column per score that any run has. With `--curves`, the learning curves instead: each run's
`metrics.jsonl` validation rows, a row per epoch and a column per run, then each run's best.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from training.config import ConfigError
from training.protocols import format_mean_std

RESULT_FILES = ("test", "base-to-novel", "zero-shot")
MISSING = "–"


def _read(path: Path, parse) -> dict | None:
    if not path.is_file():
        return None
    try:
        return parse(path.read_text())
    except (ValueError, yaml.YAMLError) as error:
        raise ConfigError(f"{path} cannot be read ({error}); rerun the mode that writes it") from error


def run_row(folder: Path) -> dict[str, str]:
    """One run's cells, by column name (a column the run has no value for is absent)."""
    if not folder.is_dir():
        raise ConfigError(f"run folder {folder} does not exist")
    results = {mode: _read(folder / f"results-{mode}.json", json.loads) for mode in RESULT_FILES}
    results = {mode: value for mode, value in results.items() if value is not None}
    if not results:
        raise ConfigError(f"{folder} holds no results-*.json: run launch.py test, zero-shot or base-to-novel with "
                          f"logging.exp_dir={folder} first")
    try:
        return _cells(folder, results)
    except KeyError as error:  # a results file of an older version (before arch, frames and the zero-shot summary)
        raise ConfigError(f"a results-*.json in {folder} has no {error}: it was written by an older version; rerun "
                          "its mode") from error


def _cells(folder: Path, results: dict[str, dict]) -> dict[str, str]:
    first = next(iter(results.values()))
    row = {"run": str(folder), "arch": first["arch"], "frames": str(first["frames"]),
           "protocol": protocol(_read(folder / "config.yaml", yaml.safe_load), results)}
    if "test" in results:
        scores = results["test"]
        row.update({"top-1": f"{scores['top1']:.1f}", "top-5": f"{scores['top5']:.1f}"})
        if "mAP" in scores:
            row["mAP"] = f"{scores['mAP']:.1f}"
    if "base-to-novel" in results:
        scores = results["base-to-novel"]
        row.update({"base": f"{scores['base']['top1']:.1f}", "novel": f"{scores['novel']['top1']:.1f}",
                    "HM": f"{scores['harmonic_mean']:.1f}"})
    if "zero-shot" in results:
        row["zero-shot top-1"] = format_mean_std(results["zero-shot"]["summary"]["top1"], digits=1)
    return row


def protocol(config: dict | None, results: dict[str, dict]) -> str:
    """How the run was trained (its config.yaml: all classes, K-shot, base classes) and what zero-shot scored."""
    parts = []
    if config is not None:
        data = config.get("data", {})
        if data.get("base_classes") is not None:
            base = data["base_classes"]
            parts.append(f"base-to-novel ({base if isinstance(base, str) else f'{len(base)} base classes'})")
        if data.get("shots") is not None:
            parts.append(f"{data['shots']}-shot")
        parts = parts or ["all classes"]
    zero_shot = results.get("zero-shot")
    if zero_shot is not None:
        splits = len({entry["shards"] for entry in zero_shot["evaluations"]})
        draws = (f" × {zero_shot['class_draws']} draws of {zero_shot['class_fraction']:.0%} of the classes"
                 if zero_shot["class_draws"] else "")
        parts.append(f"zero-shot: {splits} split{'s' if splits > 1 else ''}{draws}")
    return "; ".join(parts)


COLUMNS = ("run", "arch", "frames", "protocol", "top-1", "top-5", "mAP", "base", "novel", "HM", "zero-shot top-1")
TEXT_COLUMNS = ("run", "arch", "protocol")


def markdown_table(folders: list[Path]) -> str:
    rows = [run_row(folder) for folder in folders]
    columns = [column for column in COLUMNS if any(column in row for row in rows)]
    lines = ["| " + " | ".join(columns) + " |",
             "| " + " | ".join("---" if column in TEXT_COLUMNS else "---:" for column in columns) + " |"]
    lines += ["| " + " | ".join(row.get(column, MISSING) for column in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def val_curve(folder: Path) -> dict[int, float]:
    """Val top-1 by epoch of the last run in the folder's metrics.jsonl, which keeps every run's rows: a fresh
    start begins the curve anew, a resumed one continues it (an epoch logged again: its last row counts)."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        raise ConfigError(f"{folder} holds no metrics.jsonl: train with logging.exp_dir={folder} first")
    curve, undated = {}, None
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        try:
            row = json.loads(line)
        except ValueError as error:
            raise ConfigError(f"{path} line {number} cannot be read ({error})") from error
        if row.get("kind") == "start" and not row.get("resumed"):
            curve, undated = {}, None
        elif row.get("kind") == "val" and "epoch" not in row:
            undated = undated or number
        elif row.get("kind") == "val":
            curve[row["epoch"]] = row["top1"]
    if undated is not None:
        raise ConfigError(f"{path} line {undated}: a val row without its epoch, written by an older version; "
                          "train again to plot it")
    if not curve:
        raise ConfigError(f"{path} has no val rows: train with data.val_shards set")
    return curve


def curves_table(folders: list[Path]) -> str:
    curves = [val_curve(folder) for folder in folders]
    epochs = sorted(set().union(*curves))
    lines = ["| epoch | " + " | ".join(str(folder) for folder in folders) + " |",
             "| ---: |" + " ---: |" * len(folders)]
    lines += [f"| {epoch} | " + " | ".join(f"{curve[epoch]:.1f}" if epoch in curve else MISSING for curve in curves)
              + " |" for epoch in epochs]
    lines.append("| best | " + " | ".join(f"{max(curve.values()):.1f}" for curve in curves) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.report_table", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path,
                        help="run folders (logging.exp_dir) holding results-*.json (metrics.jsonl with --curves)")
    parser.add_argument("--curves", action="store_true",
                        help="val top-1 per epoch (from metrics.jsonl), a column per run, instead of the results")
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    try:
        table = (curves_table if args.curves else markdown_table)(args.runs)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(table, end="")
    if args.out is not None:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
