"""Turn loader outputs into the batch the trainer sees, the same way for both loaders."""
from __future__ import annotations

import torch

from pipelines.config import ClipConfig
from pipelines.epoch import EpochPlan

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(name: str | torch.dtype) -> torch.dtype:
    if isinstance(name, torch.dtype):
        if name not in DTYPES.values():
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {name}")
        return name
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {name!r}")
    return DTYPES[name]


def assemble_batch(video: torch.Tensor, label: torch.Tensor, clip: ClipConfig, plan: EpochPlan, batch_index: int,
                   dtype: torch.dtype, device: torch.device | None) -> dict[str, torch.Tensor]:
    """Batch dict: `video` (B*V, T, 3, S, S), `label` (B*V,) int64 and, for val/test, `video_id` and `valid`.

    Train input video is (B, T, 3, S, S). Val/test input is (B, crops, clips * T, 3, S, S) with frames
    clip-major; views come out video-major, then clip, then crop, so row i belongs to video i // V.
    """
    device = device or video.device
    label = label.reshape(-1).to(device=device, dtype=torch.int64, non_blocking=True)
    if clip.train:
        return {"video": video.to(device=device, dtype=dtype, non_blocking=True), "label": label}
    batch, crops = video.shape[:2]
    size = video.shape[-1]
    views = video.reshape(batch, crops, clip.num_clips, clip.num_frames, 3, size, size).transpose(1, 2)
    views = views.reshape(batch * clip.views, clip.num_frames, 3, size, size)
    video_id, valid = (torch.from_numpy(array) for array in plan.eval_slots(batch_index))
    return {
        "video": views.to(device=device, dtype=dtype, non_blocking=True),
        "label": label.repeat_interleave(clip.views),
        "video_id": video_id.repeat_interleave(clip.views).to(device),
        "valid": valid.repeat_interleave(clip.views).to(device),
    }
