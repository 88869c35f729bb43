"""The DALI graph: clip source -> video decode -> augment -> normalise.

One pipeline function serves every mode. The source (`pipelines.source.ClipSource`, in parallel worker
processes) reads each sample from its tar, draws its frame indices and keeps only the GOPs they need,
so the decoder (CPU, or NVDEC with "mixed") decodes about T x GOP / 2 frames per clip. Per-sample
values (crop window, colour factors) are graph nodes, so no Python runs per sample after the source.
Augmentation parameters are drawn once per clip, so every frame of a clip gets the same crop, flip
and colour change.

Per-sample outputs:
- train: video (T, 3, S, S), label (), decode_stats (2,) = [frames decoded, sparse]
- val/test: video (num_crops, num_clips * T, 3, S, S), label (), decode_stats; the PyTorch side reorders
  the views.
"""
from __future__ import annotations

import nvidia.dali.math as dmath
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.auto_aug import rand_augment

from pipelines.config import ClipConfig
from pipelines.source import OUTPUTS, ClipSource

OUTPUT_TYPES = {"float32": types.FLOAT, "float16": types.FLOAT16}
SOURCE_TYPES = {"encoded": types.UINT8, "indices": types.INT32, "label": types.INT32, "decode_stats": types.INT32}


@pipeline_def
def video_pipeline(source: ClipSource, spec: ClipConfig, *, decoder: str, output_type: str, read_ahead: int):
    """Build the graph; call with DALI Pipeline arguments (batch_size, num_threads, device_id, seed,
    py_num_workers, py_start_method, ...).

    `decoder` is "cpu" or "mixed" (NVDEC); `read_ahead` batches are prepared by the source's workers
    ahead of the decoder.
    """
    video, label, decode_stats = decoded_clips(source, decoder, read_ahead)
    if spec.train:
        return _train_views(video, spec, OUTPUT_TYPES[output_type]), label, decode_stats
    return _eval_views(video, spec, OUTPUT_TYPES[output_type]), label, decode_stats


def decoded_clips(source: ClipSource, decoder: str, read_ahead: int):
    """(frames (F, H, W, 3) uint8, label, decode_stats) per sample: the source and the decoder."""
    encoded, indices, label, decode_stats = fn.external_source(
        source, num_outputs=len(OUTPUTS), batch=False, parallel=True, prefetch_queue_depth=read_ahead,
        dtype=[SOURCE_TYPES[name] for name in OUTPUTS])
    video = fn.decoders.video(encoded, device=decoder, frames=indices, pad_mode="edge")
    return video, label, decode_stats


def _train_views(video, spec: ClipConfig, output_type):
    video = _multiscale_crop(video, spec)
    video = _color_augment(video, spec)
    if spec.rand_augment is not None:
        num_ops, magnitude = spec.rand_augment
        video = rand_augment.rand_augment(video, n=num_ops, m=magnitude, shape=[spec.image_size] * 2)
    mirror = fn.random.coin_flip(probability=0.5) if spec.hflip else 0
    return _normalize(video, spec, output_type, mirror=mirror)


def _multiscale_crop(video, spec: ClipConfig):
    """Crop (h, w) = scale pair x short side at a random position, resized to image_size squared."""
    shape = video.shape(dtype=types.FLOAT)
    height, width = shape[1], shape[2]
    short_side = dmath.min(height, width)
    pairs = spec.multiscale_pairs()
    choice = fn.random.choice(len(pairs))
    keys = list(range(len(pairs)))
    crop_h = fn.lookup_table(choice, keys=keys, values=pairs[:, 0].tolist(), dtype=types.FLOAT) * short_side
    crop_w = fn.lookup_table(choice, keys=keys, values=pairs[:, 1].tolist(), dtype=types.FLOAT) * short_side
    top = fn.random.uniform(range=[0.0, 1.0]) * (height - crop_h)
    left = fn.random.uniform(range=[0.0, 1.0]) * (width - crop_w)
    return fn.resize(video, size=[spec.image_size, spec.image_size], antialias=True,
                     roi_start=fn.stack(top, left), roi_end=fn.stack(top + crop_h, left + crop_w))


def _color_augment(video, spec: ClipConfig):
    """ColorJitter with probability p, then grayscale with probability q, as one colour twist.

    A skipped jitter uses neutral factors; grayscale is saturation 0 (luma, as torchvision's).
    """
    brightness, contrast, saturation, hue = spec.color_jitter
    jitter = fn.cast(fn.random.coin_flip(probability=spec.color_jitter_prob), dtype=types.FLOAT)
    keep_color = fn.cast(fn.random.coin_flip(probability=1.0 - spec.grayscale_prob), dtype=types.FLOAT)

    def shift(strength):  # a zero strength is a constant: DALI rejects an empty uniform range
        return jitter * fn.random.uniform(range=[-strength, strength]) if strength > 0 else 0.0

    return fn.color_twist(video, brightness=1.0 + shift(brightness), contrast=1.0 + shift(contrast),
                          saturation=(1.0 + shift(saturation)) * keep_color, hue=shift(hue * 360.0))


def _eval_views(video, spec: ClipConfig, output_type):
    """Short-side resize, then one centre crop or three crops along the long side."""
    video = fn.resize(video, resize_shorter=spec.eval_short_side, antialias=True)
    shape = video.shape(dtype=types.FLOAT)
    landscape = fn.cast(shape[2] >= shape[1], dtype=types.FLOAT)
    views = []
    for position in spec.crop_positions():
        along_long_side = position - 0.5
        views.append(_normalize(video, spec, output_type, crop=(spec.image_size, spec.image_size),
                                crop_pos_x=0.5 + landscape * along_long_side,
                                crop_pos_y=0.5 + (1.0 - landscape) * along_long_side))
    return fn.stack(*views)


def _normalize(video, spec: ClipConfig, output_type, **crop_and_mirror):
    return fn.crop_mirror_normalize(video, dtype=output_type, output_layout="FCHW",
                                    mean=[255.0 * m for m in spec.mean], std=[255.0 * s for s in spec.std],
                                    **crop_and_mirror)

