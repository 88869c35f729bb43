"""Errors the user can fix (bad shards, a loader this machine cannot run), each naming the file or setting and
the fix, so users see one line instead of a C++ or Python trace."""
from __future__ import annotations


class ShardError(ValueError):
    """A shard set cannot be read: missing file, missing index, missing component, stale index."""


class CorruptSampleError(RuntimeError):
    """A sample inside a shard could not be decoded."""


class LoaderSetupError(RuntimeError):
    """The loader as configured cannot run on this machine: GPU decoding without CUDA, DALI not installed."""
