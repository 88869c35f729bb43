"""`shard_tools` command line: one subcommand per module, each registering its own arguments."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from shard_tools import build, inspect, synth, verify
from shard_tools.errors import ToolError

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
    """Run one subcommand; a `ToolError` is printed as one `error: ...` line (no traceback), exit status 2."""
    args = parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ToolError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
