"""`build`: shard_tools build-shards throughput (videos/s, and per worker) with the default encoding.

Builds into a fresh temporary folder every time (never the cache), once per worker count; the time
includes starting the worker processes, as a real build's does.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks.data import SourceSet, build_shards, source_subset
from benchmarks.settings import Settings


def run(settings: Settings, sources: SourceSet) -> dict:
    subset = source_subset(sources, settings.build_videos, sources.root / f"build-{settings.build_videos}")
    rows = []
    for workers in settings.build_workers:
        with tempfile.TemporaryDirectory(prefix="bench-build-") as out:
            build = build_shards(subset, Path(out) / "shards", codec=settings.shard_codec, gop=settings.shard_gop,
                                 short_side=settings.shard_short_side, workers=workers,
                                 max_samples=settings.shard_samples, min_frames=min(settings.video_frames))
        rate = settings.build_videos / build.seconds
        rows.append({"workers": workers, "seconds": build.seconds, "videos_per_s": rate,
                     "videos_per_s_per_worker": rate / workers})
    return {"status": "ok", "rows": rows, "videos": settings.build_videos, "codec": settings.shard_codec,
            "gop": settings.shard_gop, "short_side": settings.shard_short_side,
            "source": f"{min(settings.video_size)}-{max(settings.video_size)} px, "
                      f"{min(settings.video_frames)}-{max(settings.video_frames)} frames (H.264)"}
