"""`lengths`: what a clip costs the full DALI train loader as the videos get longer, sparse against dense.

Synthetic videos of exactly each length in `lengths` frames (same generator, seed and sizes,
`length_videos` per length), encoded as the default set is (shard_codec, shard_gop, shard_short_side),
go through the train loader (sampling, decoding, augmentation) twice: decoding only the GOPs that hold
the sampled frames (sparse, the default) and every frame up to the last sampled one (dense). With T
frames sampled from GOPs of G frames, sparse decoding walks through about T x G / 2 frames whatever the
length; dense through most of the video. The videos are reread, so each epoch holds `loader_warmup`
untimed and `length_batches` timed batches, then enough for the loader to keep reading ahead to the end of
the timed ones; `loader_repeats` epochs per loader. The cost per clip is the CPU time of the timed
batches (steady state: pipeline start-up, a fixed cost per epoch, left out).
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path

from benchmarks.data import SYNTH_CLASSES, build_shards, repeated_manifest, source_subset, synthesize, video_bytes
from benchmarks.loader import measure
from benchmarks.settings import Settings
from benchmarks.stats import cpu_budget, ratio


def length_shards(settings: Settings, length: int) -> Path:
    """The shard folder of `length_videos` synthetic videos of `length` frames (built now or cached)."""
    sources, _ = synthesize(settings, math.ceil(settings.length_videos / SYNTH_CLASSES), (length, length))
    subset = source_subset(sources, settings.length_videos, sources.root / f"lengths-{settings.length_videos}")
    folder = sources.root / (f"lengths-{settings.shard_codec}-gop{settings.shard_gop}-side{settings.shard_short_side}"
                             f"-n{settings.length_videos}")
    build_shards(subset, folder, codec=settings.shard_codec, gop=settings.shard_gop,
                 short_side=settings.shard_short_side, workers=settings.workers, max_samples=settings.length_videos,
                 min_frames=1)
    return folder


def run(settings: Settings) -> dict:
    # DALI's queue and the source's read-ahead each hold `prefetch` batches beyond the one being consumed.
    batches = settings.loader_warmup + settings.length_batches + 2 * settings.run.data.prefetch
    clips = batches * settings.run.data.batch_size
    rows = []
    with cpu_budget(settings.cpus) as cores, tempfile.TemporaryDirectory(prefix="bench-lengths-") as manifests:
        for length in settings.lengths:
            folder = length_shards(settings, length)
            samples, mp4_bytes, _ = video_bytes(folder)
            listed, _ = repeated_manifest(folder, clips, Path(manifests) / f"frames{length}")
            row = {"frames": length, "videos": samples, "bytes_per_clip": mp4_bytes / samples,
                   "sparse": measure(listed, settings, settings.length_batches, backend="dali", sparse_decode=True),
                   "dense": measure(listed, settings, settings.length_batches, backend="dali", sparse_decode=False)}
            row["sparse_vs_dense"] = ratio(row["sparse"]["clips_per_s"]["median"],
                                           row["dense"]["clips_per_s"]["median"])
            rows.append(row)
    shortest = min(rows, key=lambda row: row["frames"])["sparse"]["steady_cpu_ms_per_clip"]["median"]
    for row in rows:
        row["sparse_cost_vs_shortest"] = ratio(row["sparse"]["steady_cpu_ms_per_clip"]["median"], shortest)
    return {"status": "ok", "rows": rows, "codec": settings.shard_codec, "gop": settings.shard_gop,
            "short_side": settings.shard_short_side, "frames_per_clip": settings.run.data.num_frames,
            "batch_size": settings.run.data.batch_size, "clips_per_epoch": clips, "threads": settings.run.data.workers,
            "cores": cores,
            "decode_device": settings.decode_device}
