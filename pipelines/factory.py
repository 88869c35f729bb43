"""`build_loader`: the one entry point the trainer and the benchmarks use."""
from __future__ import annotations

import os
import warnings
from typing import Sequence, Union

import torch

from pipelines.config import CLIP_MEAN, CLIP_STD, COLOR_JITTER, MULTISCALE_SCALES, ClipConfig
from pipelines.errors import ShardError
from pipelines.pyav_decode import probe_codec
from pipelines.shard_format import GPU_ONLY_CODECS
from pipelines.shards import ShardSet, open_shards

BACKENDS = ("auto", "dali", "baseline")
DECODE_DEVICES = ("auto", "gpu", "cpu")
ShardSource = Union[ShardSet, str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def build_loader(shards: ShardSource, mode: str, *, batch_size: int, num_frames: int = 8, image_size: int = 224,
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD, rank: int = 0,
                 world_size: int = 1, seed: int = 0, epoch: int = 0, decode_device: str = "auto",
                 num_threads: int = 2, prefetch: int = 2, dtype: str | torch.dtype = "float32", hflip: bool = True,
                 num_clips: int = 1, num_crops: int = 1, frame_interval: int | None = None,
                 rand_augment: Sequence[int] | None = None, scales: Sequence[float] = MULTISCALE_SCALES,
                 color_jitter: Sequence[float] = COLOR_JITTER, color_jitter_prob: float = 0.8,
                 grayscale_prob: float = 0.2, shuffle_buffer: int = 1024, sparse_decode: bool = True,
                 split: str | None = None, backend: str = "dali", device_id: int | None = None):
    """A loader over `shards` (manifest, shard folder, tar list or ShardSet) for one rank.

    Returns a DaliVideoLoader, or with backend="baseline" (or "auto" without DALI installed) a
    BaselineVideoLoader; both have `len()`, `set_epoch(e)`, `.shards` (the ShardSet: classes,
    num_samples, keys) and yield dicts `video` (B*V, T, 3, S, S) in `dtype`, `label` (B*V,) int64, and
    in val/test `video_id`, `valid` (see pipelines.epoch for the padding policy). Outputs are on the
    CUDA device when there is one (device_id, default the current device), else on the CPU.
    The DALI loader decodes only the GOPs that hold the sampled frames (`sparse_decode=False`: every
    frame up to the last sampled one); the baseline decodes from the start as conventional loaders do,
    and shuffles in a buffer of `shuffle_buffer` samples (DALI draws a permutation of the rank's range).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    clip = ClipConfig(mode=mode, num_frames=num_frames, frame_interval=frame_interval, image_size=image_size,
                      mean=tuple(mean), std=tuple(std), hflip=hflip, scales=tuple(scales),
                      color_jitter=tuple(color_jitter), color_jitter_prob=color_jitter_prob,
                      grayscale_prob=grayscale_prob,
                      rand_augment=None if rand_augment is None else tuple(rand_augment),
                      num_clips=num_clips, num_crops=num_crops)
    shard_set = shards if isinstance(shards, ShardSet) else open_shards(shards, split=split)
    if torch.cuda.is_available() and device_id is None:
        device_id = torch.cuda.current_device()
    output_device = None if device_id is None else torch.device("cuda", device_id)
    common = dict(batch_size=batch_size, rank=rank, world_size=world_size, seed=seed, epoch=epoch, prefetch=prefetch,
                  dtype=dtype, shuffle_buffer=shuffle_buffer, output_device=output_device)
    if backend != "baseline" and _dali_missing(backend):
        backend = "baseline"
    if backend == "baseline":
        from pipelines.baseline import BaselineVideoLoader
        return BaselineVideoLoader(shard_set, clip, num_workers=num_threads, **common)
    from pipelines.dali_loader import DaliVideoLoader
    decoder = resolve_decoder(decode_device, shard_set)
    return DaliVideoLoader(shard_set, clip, decoder=decoder, device_id=device_id, num_threads=num_threads,
                           sparse=sparse_decode, **common)


def resolve_decoder(decode_device: str, shards: ShardSet) -> str:
    """DALI decoder backend ("mixed" = NVDEC, or "cpu") for `decode_device`, checked against the codec."""
    if decode_device not in DECODE_DEVICES:
        raise ValueError(f"decode_device must be one of {DECODE_DEVICES}, got {decode_device!r}")
    has_cuda = torch.cuda.is_available()
    if decode_device == "gpu" and not has_cuda:
        raise RuntimeError("decode_device='gpu' but CUDA is not available; use decode_device='cpu' or 'auto'")
    if decode_device == "gpu" or (decode_device == "auto" and has_cuda):
        return "mixed"
    codec = shards.codec or probe_codec(shards)
    if codec in GPU_ONLY_CODECS:
        source = shards.manifest_path or shards.tars[0]
        raise ShardError(f"{source}: the videos are {codec}, which DALI decodes only on a GPU (NVDEC). Re-shard "
                         "as VP9 (`python -m shard_tools build-shards --codec vp9 ...`), run on a GPU, or use "
                         "backend='baseline' (PyAV)")
    return "cpu"


def _dali_missing(backend: str) -> bool:
    try:
        import nvidia.dali  # noqa: F401
    except ImportError as error:
        if backend == "dali":
            raise ImportError("DALI is not installed: `pip install nvidia-dali-cuda120` (or cuda130), or pass "
                              "backend='baseline'") from error
        warnings.warn("DALI is not installed; falling back to the PyAV baseline loader", stacklevel=3)
        return True
    return False
