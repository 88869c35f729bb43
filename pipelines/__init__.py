"""Video loaders for ActionCLIP training: DALI pipelines over webdataset shards, and a PyAV baseline.

Importing this package imports neither DALI nor torch: the names below load on first use, so the
baseline works where DALI is not installed and DALI's spawned source workers start quickly.
"""
from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "build_loader": "pipelines.factory", "LoaderConfig": "pipelines.loader_config", "open_shards": "pipelines.shards", "ShardSet": "pipelines.shards",
    "ClipConfig": "pipelines.config", "CLIP_MEAN": "pipelines.config", "CLIP_STD": "pipelines.config",
    "ShardError": "pipelines.errors", "CorruptSampleError": "pipelines.errors",
    "LoaderSetupError": "pipelines.errors",
}
__all__ = list(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'pipelines' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
