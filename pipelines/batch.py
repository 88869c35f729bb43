"""Turn loader outputs into the batch the trainer sees, the same way for both loaders."""
from __future__ import annotations

import numpy as np
import torch

from pipelines.config import ClipConfig
from pipelines.epoch import EpochPlan

# Training precision -> the dtype of the batches and of the model's compute: the one map of dtypes.
PRECISION_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def torch_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A batch dtype from a precision ("bf16"), a torch dtype name ("bfloat16") or a torch dtype."""
    resolved = (PRECISION_DTYPES.get(dtype) or getattr(torch, dtype, None)) if isinstance(dtype, str) else dtype
    if resolved not in PRECISION_DTYPES.values():
        raise ValueError(f"dtype must be one of {list(PRECISION_DTYPES)} (or float32, bfloat16, float16), got {dtype!r}")
    return resolved


def assemble_batch(video: torch.Tensor, label: torch.Tensor, spec: ClipConfig, plan: EpochPlan, batch_index: int,
                   dtype: torch.dtype, device: torch.device | None,
                   label_sets: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """Batch dict: `video` (B*V, T, 3, S, S), `label` (B*V,) int64, for val/test `video_id` and `valid`,
    and for a multi-label split `label_set` (B*V, num_classes) bool from `label_sets` (B, num_classes).

    Train input video is (B, T, 3, S, S). Val/test input is (B, crops, clips * T, 3, S, S) with frames
    clip-major; views come out video-major, then clip, then crop, so row i belongs to video i // V.
    """
    device = device or video.device
    label = label.reshape(-1).to(device=device, dtype=torch.int64, non_blocking=True)
    extra = {} if label_sets is None else {
        "label_set": torch.from_numpy(label_sets).repeat_interleave(spec.views, dim=0).to(device)}
    if spec.train:
        return {"video": video.to(device=device, dtype=dtype, non_blocking=True), "label": label, **extra}
    batch, crops = video.shape[:2]
    size = video.shape[-1]
    views = video.reshape(batch, crops, spec.num_clips, spec.num_frames, 3, size, size).transpose(1, 2)
    views = views.reshape(batch * spec.views, spec.num_frames, 3, size, size)
    video_id, valid = (torch.from_numpy(array) for array in plan.eval_slots(batch_index))
    return {
        "video": views.to(device=device, dtype=dtype, non_blocking=True),
        "label": label.repeat_interleave(spec.views),
        "video_id": video_id.repeat_interleave(spec.views).to(device),
        "valid": valid.repeat_interleave(spec.views).to(device),
        **extra,
    }
