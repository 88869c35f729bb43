"""`shard_tools inspect`: one table row per split from the manifests (counts, sizes, codec, frames)."""
from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from pipelines.shard_format import MULTI_LABEL_KEY
from shard_tools.errors import ToolError
from shard_tools.shards import manifests_in


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("inspect", help="summarise shards from their manifests",
                                 description="Print shards, samples, class balance, labels per sample (multi-label), "
                                             "bytes per sample, codec, GOP, resolution and frames per clip for every "
                                             "split found.")
    parser.add_argument("paths", nargs="+", help="shard folders or .manifest.json files")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    parser.set_defaults(run=run)


def summarise(manifest: dict) -> dict:
    counts = list(manifest["counts_per_class"].values())
    total_bytes = sum(shard["bytes"] for shard in manifest["shards"])
    encode = manifest["encode"]
    return {
        "dataset": manifest["name"], "split": manifest["split"], "shards": len(manifest["shards"]),
        "samples": manifest["num_samples"], "failed": manifest["num_failed"], "classes": manifest["num_classes"],
        "per_class_min": min(counts) if counts else 0, "per_class_max": max(counts) if counts else 0,
        "bytes_per_sample": total_bytes / max(manifest["num_samples"], 1), "codec": encode["codec"],
        "gop": encode["gop"], "short_side": encode["short_side"], "fps_cap": encode["fps_cap"],
        "frames_per_clip": manifest["frames_per_clip"], "resolutions": manifest["resolutions"],
        "multi_label": bool(manifest.get(MULTI_LABEL_KEY)), "labels_per_sample": manifest.get("labels_per_sample"),
    }


def run(args: argparse.Namespace) -> int:
    manifests = manifests_in(args.paths)
    if not manifests:
        raise ToolError(f"inspect: no *.manifest.json in {args.paths}; build-shards writes them")
    rows = [summarise(json.loads(path.read_text())) for path in manifests]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    # One column per split keeps the table readable in an 80-column terminal.
    table = Table(title="shards")
    table.add_column("")
    for row in rows:
        table.add_column(f"{row['dataset']} {row['split']}", justify="right")
    lines = {
        "shards": [str(row["shards"]) for row in rows],
        "samples": [str(row["samples"]) for row in rows],
        "failed at build": [str(row["failed"]) for row in rows],
        "classes": [str(row["classes"]) for row in rows],
        "per class min/max": [f"{row['per_class_min']}/{row['per_class_max']}" for row in rows],
        "labels per sample": [f"{_spread(row['labels_per_sample'])} multi-label" if row["multi_label"] else "1"
                              for row in rows],
        "KB per sample": [f"{row['bytes_per_sample'] / 1e3:.1f}" for row in rows],
        "codec / GOP": [f"{row['codec']} / {row['gop']}" for row in rows],
        "resolution (most common)": [next(iter(row["resolutions"]), "-") for row in rows],
        "frames min/median/max": [_spread(row["frames_per_clip"]) for row in rows],
    }
    for name, values in lines.items():
        table.add_row(name, *values)
    Console().print(table)
    return 0


def _spread(stats: dict | None) -> str:
    stats = stats or {"min": 0, "median": 0, "max": 0}
    return f"{stats['min']}/{stats['median']:g}/{stats['max']}"
