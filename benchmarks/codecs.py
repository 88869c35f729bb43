"""`codecs`: bytes per clip and DALI decode clips/s for codec x GOP x short side, on one fixed set of videos.

Decoding is measured alone (reader -> TSN frame indices -> fn.decoders.video, no augmentation), so the
numbers show what the encoding costs. MJPEG is intra-only: it is built once per short side (GOP does not
apply). Codecs DALI decodes only with NVDEC are encoded and sized on a CPU machine but not decoded.
"""
from __future__ import annotations

import time

import nvidia.dali.fn as fn
import nvidia.dali.types as types
from nvidia.dali import pipeline_def

from pipelines.dali_pipeline import DALI_MATH
from pipelines.sampling import frame_grid, frame_indices
from pipelines.shards import GPU_ONLY_CODECS, open_shards

from benchmarks.data import SourceSet, build_shards, source_subset, video_bytes
from benchmarks.settings import Settings
from benchmarks.stats import summarize

INTRA_ONLY = frozenset({"mjpeg"})


@pipeline_def
def decode_pipeline(tars, indexes, num_frames: int, decoder: str):
    """Train-mode TSN sampling (one random frame per segment) and decoding, nothing else."""
    encoded, info = fn.readers.webdataset(paths=list(tars), index_paths=list(indexes), ext=["mp4", "info"],
                                          dtypes=[types.UINT8, types.INT32], random_shuffle=True,
                                          initial_fill=64, name="shards")
    offsets = fn.random.uniform(range=[0.0, 1.0], shape=[num_frames])
    indices = frame_indices(fn.cast(info[1], dtype=types.FLOAT), offsets, frame_grid(num_frames), num_frames,
                            None, DALI_MATH)
    return fn.decoders.video(encoded, device=decoder, frames=fn.cast(indices, dtype=types.INT32),
                             pad_mode="edge")


def decode_rate(folder, settings: Settings) -> dict:
    """Decode clips/s over `codec_batches` batches per repeat, after one warm-up batch."""
    shards = open_shards(folder)
    gpu = settings.device.type == "cuda"
    pipe = decode_pipeline(shards.tars, shards.indexes, settings.num_frames, "mixed" if gpu else "cpu",
                           batch_size=settings.batch_size, num_threads=settings.threads,
                           device_id=settings.device.index if gpu else None, seed=settings.seed,
                           prefetch_queue_depth=settings.prefetch)
    pipe.build()
    pipe.run()
    rates = []
    for _ in range(settings.codec_repeats):
        started = time.perf_counter()
        for _ in range(settings.codec_batches):
            outputs = pipe.run()
        if gpu:
            outputs[0][settings.batch_size - 1].as_cpu()  # one sample's copy waits for the whole batch's decode
        rates.append(settings.batch_size * settings.codec_batches / (time.perf_counter() - started))
    del pipe
    return summarize(rates, "clips/s")


def grid(settings: Settings) -> list[tuple[str, int | None, int]]:
    """(codec, gop, short side) points; None for the GOP of intra-only codecs."""
    points = []
    for codec in settings.codecs:
        gops = [None] if codec in INTRA_ONLY else settings.gops
        points += [(codec, gop, side) for gop in gops for side in settings.short_sides]
    return points


def run(settings: Settings, sources: SourceSet) -> dict:
    sweep_root = sources.root / f"codecs-{settings.codec_videos}"
    subset = source_subset(sources, settings.codec_videos, sweep_root)
    gpu = settings.device.type == "cuda"
    rows, skipped = [], []
    for codec, gop, side in grid(settings):
        folder = sweep_root / f"{codec}-gop{gop or 'intra'}-side{side}"
        build = build_shards(subset, folder, codec=codec, gop=gop or 1, short_side=side, workers=settings.workers,
                             max_samples=settings.codec_videos, min_frames=min(settings.video_frames))
        samples, mp4_bytes, tar_bytes = video_bytes(folder)
        row = {"codec": codec, "gop": gop, "short_side": side, "clips": samples,
               "bytes_per_clip": mp4_bytes / samples, "shard_bytes_per_clip": tar_bytes / samples,
               "encode_videos_per_s": None if build.seconds is None else samples / build.seconds,
               "encode_workers": build.workers}
        if codec in GPU_ONLY_CODECS and not gpu:
            row["decode"] = None
            row["decode_skipped"] = f"{codec} decodes only on a GPU (NVDEC) in DALI"
            if codec not in skipped:
                skipped.append(codec)
        else:
            row["decode"] = decode_rate(folder, settings)
        rows.append(row)
    return {"status": "ok", "rows": rows, "videos": settings.codec_videos, "frames_per_clip": settings.num_frames,
            "batch_size": settings.batch_size, "decoder": "mixed (NVDEC)" if gpu else "cpu",
            "skipped_decode": skipped, "encode_timing": "wall-clock rate of the build that made the shards "
                                                        "(all its worker processes), recorded when it ran"}
