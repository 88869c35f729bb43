"""The one kind of error `shard_tools` reports as a single `error: ...` line with exit status 2."""
from __future__ import annotations


class ToolError(ValueError):
    """Bad input or a refused operation; the message names the file (and line or flag) and what to do."""
