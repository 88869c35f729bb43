"""`codecs`: bytes per clip and decode cost for codec x GOP x short side, on one fixed set of videos.

Decoding is measured alone (clip source -> fn.decoders.video, no augmentation), so the numbers show what
the encoding costs. Every decoder of a point gets the same clips and frame indices (train-mode TSN
sampling, drawn by `pipelines.source.ClipSource`) on the same cores:

- `dali`: the DALI decoder fed only the GOPs that hold the sampled frames, as the loader feeds it;
  `dali-dense`: fed the whole video, so it decodes every frame up to the last sampled one.
- `limit`: what decoding exactly those GOPs costs at the least: PyAV on one thread decoding the sparse
  MP4, made beforehand (`remux` is that step's own cost), the sampled frames converted to RGB.
- peers (`PEERS`): other decoders given the whole video and the indices, measured where they import.

The videos are reread, so each epoch holds one warm-up batch and `codec_batches` timed ones; clips/s
leaves the warm-up batch out, DALI's CPU time covers whole epochs (one pipeline, reset between
repeats, so no start-up but the first batch's ramp). MJPEG is
intra-only: it is built once per short side (GOP does not apply). Codecs DALI decodes only with NVDEC
are encoded and sized on a CPU machine but not decoded.
"""
from __future__ import annotations

import io
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
from nvidia.dali import pipeline_def
from nvidia.dali.types import SampleInfo

from pipelines import ClipConfig, ShardSet, open_shards
from pipelines.dali_pipeline import decoded_clips
from pipelines.epoch import EpochPlan
from pipelines.pyav_decode import decode_frames
from pipelines.shard_format import GPU_ONLY_CODECS
from pipelines.source import ClipSource
from pipelines.sparse import select_gops

from benchmarks.data import SourceSet, build_shards, repeated_manifest, source_subset, video_bytes
from benchmarks.settings import Settings
from benchmarks.stats import cpu_budget, cpu_seconds, ratio, summarize, synchronize

INTRA_ONLY = frozenset({"mjpeg"})
Clip = tuple[bytes, np.ndarray]  # whole video, frame indices
Decode = Callable[[bytes, np.ndarray], np.ndarray]  # -> the frames at the indices, RGB


@pipeline_def
def decode_pipeline(source: ClipSource, decoder: str, read_ahead: int):
    """The loader's source and decoder, nothing else: (frames, label, decode_stats) per sample."""
    return decoded_clips(source, decoder, read_ahead)


def clip_source(shards: ShardSet, settings: Settings, *, sparse: bool) -> ClipSource:
    """The train loader's source for one epoch of `shards` on one rank."""
    plan = EpochPlan(shards.num_samples, settings.run.data.batch_size, rank=0, world_size=1, epoch=0, train=True)
    return ClipSource(shards, ClipConfig("train", num_frames=settings.run.data.num_frames), plan, settings.run.seed,
                      sparse=sparse)


def dali_decode(shards: ShardSet, settings: Settings, *, sparse: bool) -> dict:
    """`codec_repeats` epochs of one pipeline: clips/s after the first batch, CPU ms/clip over the epoch
    (threads and source workers), frames decoded per clip, and the clips decoded whole (irregular GOPs)."""
    gpu, data = settings.device.type == "cuda", settings.run.data
    # Forked workers would inherit a CUDA context, which DALI does not allow.
    pipe = decode_pipeline(clip_source(shards, settings, sparse=sparse), "mixed" if gpu else "cpu", data.prefetch,
                           batch_size=data.batch_size, num_threads=data.workers,
                           device_id=settings.device.index if gpu else None, seed=settings.run.seed,
                           prefetch_queue_depth=data.prefetch, py_num_workers=data.workers,
                           py_start_method="spawn" if gpu else "fork")
    pipe.build()
    rates, costs, batches = [], [], []
    for _ in range(settings.codec_repeats):
        cpu_before = cpu_seconds()
        clips, timed_from = 0, None
        while True:
            try:
                _, _, batch_stats = pipe.run()
            except StopIteration:
                break
            batches.append(np.array(batch_stats.as_tensor()))  # per clip: [frames decoded, sparse]
            clips += data.batch_size
            if timed_from is None:
                synchronize(settings.device)
                timed_from = time.perf_counter()
        synchronize(settings.device)
        rates.append((clips - data.batch_size) / (time.perf_counter() - timed_from))
        costs.append(1000 * (cpu_seconds() - cpu_before) / clips)
        pipe.reset()
    del pipe
    per_clip = np.concatenate(batches)
    return {"clips_per_s": summarize(rates, "clips/s"), "cpu_ms_per_clip": summarize(costs, "ms"),
            "frames_decoded_per_clip": float(per_clip[:, 0].mean()), "dense_clips": int((per_clip[:, 1] == 0).sum())}


def epoch_clips(shards: ShardSet, settings: Settings) -> list[Clip]:
    """(whole video, frame indices) of every slot of the epoch the DALI pipelines decode, from the same source."""
    source, batch_size = clip_source(shards, settings, sparse=False), settings.run.data.batch_size
    clips = []
    for slot in range(len(source.positions)):
        encoded, indices, _, _ = source(SampleInfo(slot, slot % batch_size, slot // batch_size, 0))
        clips.append((encoded.tobytes(), indices))
    return clips


def needed_gops_limit(clips: list[Clip], repeats: int) -> dict:
    """CPU ms/clip of cutting out the needed GOPs (`remux`) and of decoding them on one thread (`cpu`)."""
    remux, decode = [], []
    for _ in range(repeats):
        started = time.thread_time()
        selected = [select_gops(data, indices) for data, indices in clips]
        remux.append(1000 * (time.thread_time() - started) / len(clips))
        started = time.thread_time()
        for clip in selected:
            decode_frames(clip.data, clip.indices, one_thread=True)
        decode.append(1000 * (time.thread_time() - started) / len(clips))
    return {"cpu_ms_per_clip": summarize(decode, "ms"), "remux_ms_per_clip": summarize(remux, "ms"),
            "frames_decoded_per_clip": statistics.mean(clip.decoded_frames for clip in selected)}


def _decord() -> Decode:
    import decord

    def decode(data: bytes, indices: np.ndarray) -> np.ndarray:
        reader = decord.VideoReader(io.BytesIO(data), ctx=decord.cpu(0), num_threads=1)
        return reader.get_batch(indices.tolist()).asnumpy()
    return decode


def _torchcodec() -> Decode:
    from torchcodec.decoders import VideoDecoder

    def decode(data: bytes, indices: np.ndarray) -> np.ndarray:
        decoder = VideoDecoder(data, device="cpu", num_ffmpeg_threads=1, seek_mode="exact")
        return decoder.get_frames_at(indices.tolist()).data.numpy()
    return decode


# Other video loaders' decoders, each on one thread, each from the whole video as their loaders read it.
PEERS: dict[str, Callable[[], Decode]] = {"decord": _decord, "torchcodec": _torchcodec}


def _one_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def load_peers(probe: Clip) -> tuple[dict[str, Decode], dict[str, str]]:
    """The peers that decode `probe` to its frame count, and why each other one cannot run here."""
    peers, missing = {}, {}
    for name, load in PEERS.items():
        try:
            decode = load()
            frames = decode(*probe)
        # Not installed (ImportError), or installed without the shared libraries it loads on first use.
        except Exception as error:
            missing[name] = _one_line(error)
            continue
        if len(frames) != len(probe[1]):
            missing[name] = f"returned {len(frames)} frames for {len(probe[1])} indices"
            continue
        peers[name] = decode
    return peers, missing


def peer_decode(decode: Decode, clips: list[Clip], repeats: int) -> dict:
    """clips/s and CPU ms/clip of decoding every clip in turn, `repeats` times; or the error it stopped on."""
    rates, costs = [], []
    try:
        for _ in range(repeats):
            cpu_before, started = cpu_seconds(), time.perf_counter()
            for data, indices in clips:
                decode(data, indices)
            rates.append(len(clips) / (time.perf_counter() - started))
            costs.append(1000 * (cpu_seconds() - cpu_before) / len(clips))
    # A peer can fail on one encoding only (decord on some frame sizes): that point records it, the others run.
    except Exception as error:
        return {"error": _one_line(error)}
    return {"clips_per_s": summarize(rates, "clips/s"), "cpu_ms_per_clip": summarize(costs, "ms")}


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
    peers, missing = None, {}
    with cpu_budget(settings.cpus) as cores, tempfile.TemporaryDirectory(prefix="bench-codecs-") as manifests:
        for codec, gop, side in grid(settings):
            folder = sweep_root / f"{codec}-gop{gop or 'intra'}-side{side}"
            build = build_shards(subset, folder, codec=codec, gop=gop or 1, short_side=side, workers=settings.workers,
                                 max_samples=settings.codec_videos, min_frames=min(settings.video_frames))
            samples, mp4_bytes, tar_bytes = video_bytes(folder)
            row = {"codec": codec, "gop": gop, "short_side": side, "clips": samples,
                   "bytes_per_clip": mp4_bytes / samples, "shard_bytes_per_clip": tar_bytes / samples,
                   "encode_videos_per_s": None if build.seconds is None else samples / build.seconds,
                   "encode_workers": build.workers, "decode": None}
            if codec in GPU_ONLY_CODECS and not gpu:
                row["decode_skipped"] = f"{codec} decodes only on a GPU (NVDEC) in DALI"
                if codec not in skipped:
                    skipped.append(codec)
                rows.append(row)
                continue
            listed, _ = repeated_manifest(folder, (settings.codec_batches + 1) * settings.run.data.batch_size,
                                          Path(manifests) / folder.name)
            shards = open_shards(listed)
            clips = epoch_clips(shards, settings)
            if peers is None:
                peers, missing = load_peers(clips[0])
            decode = {"dali": dali_decode(shards, settings, sparse=True),
                      "dali-dense": dali_decode(shards, settings, sparse=False),
                      "limit": needed_gops_limit(clips, settings.codec_repeats),
                      "peers": {name: peer_decode(peer, clips, settings.codec_repeats) for name, peer in peers.items()},
                      "clips_per_epoch": len(clips)}
            decode["dali_vs_limit"] = ratio(decode["dali"]["cpu_ms_per_clip"]["median"],
                                            decode["limit"]["cpu_ms_per_clip"]["median"])
            row["decode"] = decode
            rows.append(row)
    return {"status": "ok", "rows": rows, "videos": settings.codec_videos,
            "frames_per_clip": settings.run.data.num_frames,
            "batch_size": settings.run.data.batch_size, "decoder": "mixed (NVDEC)" if gpu else "cpu",
            "threads": settings.run.data.workers, "cores": cores,
            "peers": sorted(peers or {}), "peers_missing": missing, "skipped_decode": skipped,
            "encode_timing": "wall-clock rate of the build that made the shards (all its worker processes), "
                             "recorded when it ran"}
