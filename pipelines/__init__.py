"""Video loaders for ActionCLIP training: DALI pipelines over webdataset shards, and a PyAV baseline.

Importing this package does not import DALI, so the baseline works where DALI is not installed.
"""
from pipelines.config import CLIP_MEAN, CLIP_STD, ClipConfig
from pipelines.errors import CorruptSampleError, ShardError
from pipelines.factory import build_loader
from pipelines.shards import ShardSet, open_shards

__all__ = ["build_loader", "open_shards", "ShardSet", "ClipConfig", "ShardError", "CorruptSampleError",
           "CLIP_MEAN", "CLIP_STD"]
