"""Errors raised for bad shards, so users see the file, the sample and the fix instead of a C++ trace."""
from __future__ import annotations


class ShardError(ValueError):
    """A shard set cannot be read: missing file, missing index, missing component, stale index."""


class CorruptSampleError(RuntimeError):
    """A sample inside a shard could not be decoded."""
