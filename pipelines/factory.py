"""`build_loader`: the one entry point the trainer and the benchmarks use."""
from __future__ import annotations

import os
import warnings
from typing import Any, Sequence, Union

import torch

from pipelines.config import CLIP_MEAN, CLIP_STD, ClipConfig
from pipelines.errors import LoaderSetupError, ShardError
from pipelines.loader_config import DECODE_DEVICES, LoaderConfig
from pipelines.pyav_decode import probe_codec
from pipelines.shard_format import GPU_ONLY_CODECS
from pipelines.shards import ShardSet, open_shards

ShardSource = Union[ShardSet, str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def build_loader(shards: ShardSource, mode: str, config: LoaderConfig | None = None, *, rank: int = 0,
                 world_size: int = 1, seed: int = 0, epoch: int = 0, mean: Sequence[float] = CLIP_MEAN,
                 std: Sequence[float] = CLIP_STD, dtype: str | torch.dtype = "float32", num_clips: int = 1,
                 num_crops: int = 1, split: str | None = None, device_id: int | None = None, **settings: Any):
    """A loader over `shards` (manifest, shard folder, tar list or ShardSet) for one rank.

    `config` (default LoaderConfig()) holds the loader's settings, the run config's `data` section;
    `settings` are LoaderConfig fields set over it (`build_loader(shards, "val", batch_size=4, num_frames=8)`).
    The rest come from elsewhere in a run: `mean`/`std` from the image tower, `dtype` from the engine's
    precision, `num_clips` x `num_crops` views per video from the test protocol.

    Returns a DaliVideoLoader, or with backend="baseline" (or "auto" without DALI installed) a
    BaselineVideoLoader; both have `len()`, `set_epoch(e)`, `.shards` (the ShardSet: classes,
    num_samples, keys) and yield dicts `video` (B*V, T, 3, S, S) in `dtype`, `label` (B*V,) int64, and
    in val/test `video_id`, `valid` (see pipelines.epoch for the padding policy). Outputs are on the
    CUDA device when there is one (device_id, default the current device), else on the CPU.
    The DALI loader decodes only the GOPs that hold the sampled frames (`sparse_decode=False`: every
    frame up to the last sampled one); the baseline decodes from the start as conventional loaders do,
    and shuffles in a buffer of `shuffle_buffer` samples (DALI draws a permutation of the rank's range).
    """
    base = config or LoaderConfig()
    config = LoaderConfig.model_validate({**{name: getattr(base, name) for name in LoaderConfig.model_fields},
                                          **settings})
    spec = ClipConfig(mode=mode, num_frames=config.num_frames, frame_interval=config.frame_interval,
                      image_size=config.image_size, mean=tuple(mean), std=tuple(std), hflip=config.flip,
                      scales=tuple(config.scales), color_jitter=config.color_jitter,
                      color_jitter_prob=config.color_jitter_prob, grayscale_prob=config.grayscale_prob,
                      rand_augment=config.rand_augment, num_clips=num_clips, num_crops=num_crops)
    shard_set = shards if isinstance(shards, ShardSet) else open_shards(shards, split=split)
    if torch.cuda.is_available() and device_id is None:
        device_id = torch.cuda.current_device()
    output_device = None if device_id is None else torch.device("cuda", device_id)
    common = dict(batch_size=config.batch_size, rank=rank, world_size=world_size, seed=seed, epoch=epoch,
                  prefetch=config.prefetch, dtype=dtype, shuffle_buffer=config.shuffle_buffer,
                  output_device=output_device)
    if config.backend == "baseline" or _dali_missing(config.backend):
        from pipelines.baseline import BaselineVideoLoader
        return BaselineVideoLoader(shard_set, spec, num_workers=config.workers, **common)
    from pipelines.dali_loader import DaliVideoLoader
    decoder = resolve_decoder(config.decode_device, shard_set)
    return DaliVideoLoader(shard_set, spec, decoder=decoder, device_id=device_id, num_threads=config.workers,
                           sparse=config.sparse_decode, **common)


def resolve_decoder(decode_device: str, shards: ShardSet) -> str:
    """DALI decoder backend ("mixed" = NVDEC, or "cpu") for `decode_device`, checked against the codec."""
    if decode_device not in DECODE_DEVICES:
        raise ValueError(f"decode_device must be one of {DECODE_DEVICES}, got {decode_device!r}")
    has_cuda = torch.cuda.is_available()
    if decode_device == "gpu" and not has_cuda:
        raise LoaderSetupError("data.decode_device='gpu' but CUDA is not available on this machine; set "
                               "data.decode_device=cpu or auto")
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
            raise LoaderSetupError("DALI is not installed: `pip install nvidia-dali-cuda120` (or cuda130), or set "
                                   "data.backend=baseline") from error
        warnings.warn("DALI is not installed; falling back to the PyAV baseline loader", stacklevel=3)
        return True
    return False
