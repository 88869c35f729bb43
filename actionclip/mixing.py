"""Mixup and CutMix on whole clips: one weight and one box per clip, the same for every frame of the clip.

Clip i of a batch is mixed with clip `partner[i]` of the same batch (a random permutation, so a clip may be
paired with itself and is then left as it is):

- Mixup: `mixed_i = λ_i · clip_i + (1 - λ_i) · clip_partner[i]`, with `λ_i ~ Beta(mixup, mixup)`.
- CutMix: a box of about `(1 - λ_i)` of the frame area (`λ_i ~ Beta(cutmix, cutmix)`; sides `sqrt(1 - λ_i)`
  of the frame's, centre uniform over the frame, cut at its edges) is pasted from clip `partner[i]` into every
  frame of clip i; `λ_i` is then the share of the frame left uncovered.

With both on, each mixed clip takes one of the two at random; each clip is mixed with probability
`mix_prob` (else `λ_i = 1`). Everything is drawn from the numpy generator the caller passes (the trainer
seeds it like the epoch's data, so a resumed epoch mixes its batches the same way). The loss mixes the
targets with the same `λ_i` and partners (`actionclip_loss(..., mix=Mix)`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Mix:
    """How each clip of a batch was mixed (all tensors on the CPU)."""

    partner: torch.Tensor  # (B,) int64: the clip mixed into clip i (i itself: unmixed)
    blend: torch.Tensor  # (B,) float64: Mixup's λ_i (1 for CutMix and unmixed clips)
    # (B, 4) int64: CutMix box (top, bottom, left, right): rows [top, bottom), columns [left, right); empty otherwise.
    boxes: torch.Tensor
    frame_size: tuple[int, int]  # (H, W) of the frames the boxes lie in

    @property
    def weight(self) -> torch.Tensor:
        """(B,) float64 λ_i: the share of clip i itself in mixed clip i (Mixup's λ, or CutMix's uncovered area)."""
        height, width = self.frame_size
        area = (self.boxes[:, 1] - self.boxes[:, 0]) * (self.boxes[:, 3] - self.boxes[:, 2])
        return self.blend * (1.0 - area.double() / (height * width))


def draw_mix(batch: int, frame_size: tuple[int, int], rng: np.random.Generator, mixup: float = 0.0,
             cutmix: float = 0.0, mix_prob: float = 1.0) -> Mix:
    """A `Mix` for a batch of `batch` clips of `frame_size` (H, W): partners, Mixup weights and CutMix boxes.

    `mixup` / `cutmix` are the Beta distributions' α (0: that one off; at least one must be on). The same
    number of values is drawn from `rng` whatever comes out, so every batch advances it alike.
    """
    if mixup < 0 or cutmix < 0 or not (mixup or cutmix):
        raise ValueError(f"mixup and cutmix are Beta α values >= 0, at least one of them > 0; got {mixup}, {cutmix}")
    height, width = frame_size
    mixed = rng.random(batch) < mix_prob
    picks_cutmix = rng.random(batch) < (0.5 if mixup and cutmix else 1.0 if cutmix else 0.0)
    alpha = np.where(picks_cutmix, cutmix, mixup)  # > 0 wherever picked
    lam = np.where(mixed, rng.beta(alpha, alpha), 1.0)
    partner = rng.permutation(batch)
    centre_y, centre_x = rng.integers(0, height, batch), rng.integers(0, width, batch)
    cut = np.sqrt(1.0 - lam)
    half_h, half_w = (height * cut).astype(np.int64) // 2, (width * cut).astype(np.int64) // 2
    boxes = np.stack([np.clip(centre_y - half_h, 0, height), np.clip(centre_y + half_h, 0, height),
                      np.clip(centre_x - half_w, 0, width), np.clip(centre_x + half_w, 0, width)], axis=1)
    cutting = mixed & picks_cutmix
    boxes[~cutting] = 0
    blend = np.where(mixed & ~picks_cutmix, lam, 1.0)
    return Mix(torch.from_numpy(partner), torch.from_numpy(blend), torch.from_numpy(boxes.astype(np.int64)),
               (height, width))


def mix_clips(video: torch.Tensor, mix: Mix) -> torch.Tensor:
    """`video` (B, T, C, H, W) with each clip mixed as `mix` says: blended with its partner (Mixup) or its
    partner's box pasted into every frame (CutMix). Computed in float32 (or float64 input), returned in
    `video`'s dtype; an unmixed clip comes back unchanged."""
    if video.ndim != 5 or tuple(video.shape[-2:]) != mix.frame_size or len(mix.partner) != video.shape[0]:
        raise ValueError(f"video must be (B, T, C, H, W) with B = {len(mix.partner)} and (H, W) = {mix.frame_size}, "
                         f"got {tuple(video.shape)}")
    device = video.device
    compute = torch.promote_types(video.dtype, torch.float32)
    own, partner = video.to(compute), video[mix.partner.to(device)].to(compute)
    blend = mix.blend.to(device, compute).view(-1, 1, 1, 1, 1)
    mixed = blend * own + (1.0 - blend) * partner
    top, bottom, left, right = mix.boxes.to(device).unbind(1)
    rows = torch.arange(video.shape[-2], device=device)[None, :, None]
    columns = torch.arange(video.shape[-1], device=device)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < bottom[:, None, None])
              & (columns >= left[:, None, None]) & (columns < right[:, None, None]))  # (B, H, W)
    return torch.where(inside[:, None, None], partner, mixed).to(video.dtype)
