"""The conventional loader: webdataset + PyAV + torchvision in a torch DataLoader with workers.

Same samples, frame indices, view layout, padding and batch count as the DALI loader (see
`pipelines.epoch`); augmentation has the same parameter distributions (not the same random draws).
Every process of a rank reads the rank's tars and keeps every `num_workers`-th batch to decode, so
batches come back in order and a sample's random draws depend only on (seed, epoch, rank, position).
"""
from __future__ import annotations

import itertools
import math
from typing import Iterator

import av
import numpy as np
import torch
import webdataset as wds
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from pipelines.batch import assemble_batch
from pipelines.config import ClipConfig, epoch_seed
from pipelines.epoch import EpochPlan
from pipelines.errors import CorruptSampleError
from pipelines.loader import EpochLoader
from pipelines.pyav_decode import decode_frames
from pipelines.sampling import sample_frame_indices
from pipelines.shards import VERIFY_HINT, ShardSet


class BaselineVideoLoader(EpochLoader):
    """Same interface as DaliVideoLoader: `len()`, `set_epoch(e)`, iterate one epoch of batch dicts."""

    def __init__(self, shards: ShardSet, spec: ClipConfig, *, batch_size: int, rank: int = 0, world_size: int = 1,
                 seed: int = 0, epoch: int = 0, num_workers: int = 2, prefetch: int = 2,
                 dtype: str | torch.dtype = "float32", shuffle_buffer: int = 1024,
                 output_device: str | torch.device | None = None) -> None:
        self.num_workers = num_workers
        super().__init__(shards, spec, batch_size=batch_size, rank=rank, world_size=world_size, seed=seed,
                         epoch=epoch, prefetch=prefetch, dtype=dtype, shuffle_buffer=shuffle_buffer,
                         output_device=output_device)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        stream = RankStream(self.shards, self.spec, self.plan, epoch_seed(self.seed, self.epoch, self.rank),
                            self.shuffle_buffer)
        workers = self.num_workers
        loader = DataLoader(stream, batch_size=None, num_workers=workers,
                            prefetch_factor=self.prefetch if workers else None,
                            pin_memory=self.output_device is not None and self.output_device.type == "cuda")
        for batch_index, (video, label, positions) in enumerate(loader):
            yield assemble_batch(video, label, self.spec, self.plan, batch_index, self.dtype, self.output_device,
                                 self.label_sets(positions.numpy()))


class RankStream(IterableDataset):
    """Batches (video, label, reading-order position) of one rank and epoch; each DataLoader worker builds
    every W-th batch."""

    def __init__(self, shards: ShardSet, spec: ClipConfig, plan: EpochPlan, seed: int, shuffle_buffer: int) -> None:
        self.shards, self.spec, self.plan, self.seed, self.shuffle_buffer = shards, spec, plan, seed, shuffle_buffer
        self.transform = train_transform(spec) if spec.train else None

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        worker = get_worker_info()
        worker_id, num_workers = (0, 1) if worker is None else (worker.id, worker.num_workers)
        batch_size = self.plan.batch_size
        reading_order = {key: position for position, key in enumerate(self.shards.keys)}
        videos, labels, positions = [], [], []
        for slot, sample in enumerate(self._samples(reading_order)):
            if (slot // batch_size) % num_workers != worker_id:
                continue
            video, label = self._clip(sample, slot)
            videos.append(video)
            labels.append(label)
            positions.append(reading_order[sample["__key__"]])
            if len(videos) == batch_size:
                yield torch.stack(videos), torch.tensor(labels, dtype=torch.int64), torch.tensor(positions)
                videos, labels, positions = [], [], []

    def _samples(self, reading_order: dict[str, int]) -> Iterator[dict]:
        """The rank's raw samples in loader order, cut (train) or padded (val/test) to whole batches. The tars are
        read through; samples outside the shard set (a `ShardSet.subset`) are skipped by key."""
        begin, end = self.plan.sample_range
        numbers = self.shards.tars_overlapping(begin, end)
        first = self.shards.first_position(numbers[0])
        dataset = wds.WebDataset([self.shards.tars[n] for n in numbers], shardshuffle=False, nodesplitter=None,
                                 workersplitter=None, empty_check=False)
        members = (sample for sample in dataset if sample["__key__"] in reading_order)
        samples = itertools.islice(members, begin - first, end - first)
        wanted = self.plan.num_batches * self.plan.batch_size
        if self.spec.train:
            samples = wds.filters.shuffle(self.shuffle_buffer, initial=self.shuffle_buffer, seed=self.seed)(samples)
            return itertools.islice(samples, wanted)
        return _pad_with_last(samples, wanted)

    def _clip(self, sample: dict, position: int) -> tuple[torch.Tensor, int]:
        spec = self.spec
        stored, video_frames = (int(v) for v in np.frombuffer(sample["info"], dtype="<i4")[:2])
        label = self.shards.class_id(stored)
        rng = np.random.default_rng([self.seed, position])
        indices = sample_frame_indices(video_frames, spec.num_frames, train=spec.train, rng=rng,
                                       num_clips=spec.num_clips, frame_interval=spec.frame_interval)
        try:
            frames = decode_frames(sample["mp4"], indices)
        except (av.error.FFmpegError, ValueError) as error:
            raise CorruptSampleError(f"corrupt sample {sample['__key__']!r} in shard {sample['__url__']}: "
                                     f"{error}; {VERIFY_HINT}") from error
        video = tv_tensors.Video(torch.from_numpy(frames).permute(0, 3, 1, 2))
        if spec.train:
            return self._train_clip(video, rng), label
        return eval_views(video, spec), label

    def _train_clip(self, video: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.integers(2**31)))
            return self.transform(multiscale_crop(video, self.spec, rng)).as_subclass(torch.Tensor)


def _pad_with_last(samples, count: int) -> Iterator[dict]:
    sample = None
    for sample in itertools.islice(samples, count):
        yield sample
        count -= 1
    for _ in range(count):
        yield sample


def train_transform(spec: ClipConfig) -> v2.Compose:
    """Flip, colour jitter, grayscale, RandAugment, normalise: one parameter draw per video."""
    steps = [v2.RandomHorizontalFlip(0.5 if spec.hflip else 0.0),
             v2.RandomApply([v2.ColorJitter(*spec.color_jitter)], p=spec.color_jitter_prob),
             v2.RandomGrayscale(spec.grayscale_prob)]
    if spec.rand_augment is not None:
        steps.append(v2.RandAugment(*spec.rand_augment))
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(spec.mean), list(spec.std))]
    return v2.Compose(steps)


def multiscale_crop(video: torch.Tensor, spec: ClipConfig, rng: np.random.Generator) -> torch.Tensor:
    """A scale-pair crop of the short side at a random position, resized to image_size squared."""
    height, width = video.shape[-2:]
    short_side = min(height, width)
    pairs = spec.multiscale_pairs()
    crop_h, crop_w = (round(float(fraction) * short_side) for fraction in pairs[rng.integers(len(pairs))])
    top = int(rng.random() * (height - crop_h))
    left = int(rng.random() * (width - crop_w))
    return F.resized_crop(video, top, left, crop_h, crop_w, [spec.image_size] * 2, antialias=True)


def eval_views(video: torch.Tensor, spec: ClipConfig) -> torch.Tensor:
    """(crops, clips * T, 3, S, S): short side resized, crops along the long side (DALI's rounding)."""
    height, width = video.shape[-2:]
    short = spec.eval_short_side
    scale = short / min(height, width)
    video = F.resize(video, [math.floor(height * scale + 0.5), math.floor(width * scale + 0.5)], antialias=True)
    video = F.to_dtype(video, torch.float32, scale=True)
    height, width = video.shape[-2:]
    size = spec.image_size
    views = []
    for position in spec.crop_positions():
        along_x = position if width >= height else 0.5
        along_y = 0.5 if width >= height else position
        top = math.floor(along_y * (height - size) + 0.5)
        left = math.floor(along_x * (width - size) + 0.5)
        views.append(F.normalize(F.crop(video, top, left, size, size), list(spec.mean), list(spec.std)))
    return torch.stack(views).as_subclass(torch.Tensor)
