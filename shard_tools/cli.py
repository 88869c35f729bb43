"""`shard_tools` command line: one subcommand per module, each registering its own arguments."""
from __future__ import annotations

import argparse
from typing import Sequence

from shard_tools import build, inspect, synth, verify

SUBCOMMANDS = (build, verify, inspect, synth)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="shard_tools",
        description="Pack video datasets into webdataset shards that DALI reads, then verify and inspect them.",
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(commands)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.run(args) or 0)
