"""In-network (`Shift`) and pre-network (`Joint`) temporal modelling for open_clip's ViT image tower.

Both are added to an already built (and weight-loaded) `open_clip.transformer.VisionTransformer` by
wrapping its modules, so open_clip's own forward, pooling, projection and gradient checkpointing keep
working unchanged:

- `Shift` wraps every residual block as `block -> TemporalShiftBlock(net=block)`, which shifts a slice of
  the patch-token channels between neighbouring frames before the block runs. The extra `.net` level in
  the parameter names is the same one the original ActionCLIP checkpoints have.
- `Joint` wraps `ln_pre`: the frame tokens of one video are joined into a single sequence (one class token,
  then all frames' patch tokens, each frame's tokens plus a learned time embedding) before the pre-norm, so
  the transformer attends across space and time and the tower returns one embedding per video.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer
from torch import nn


def temporal_shift(tokens: torch.Tensor, num_frames: int, fold_div: int = 8) -> torch.Tensor:
    """Shift patch-token channels across frames; the class token (index 0) is left untouched.

    `tokens` is (videos * num_frames, 1 + patches, channels), frames of one video consecutive. With
    `fold = channels // fold_div`, channels [0, fold) of frame t take frame t+1's values, channels
    [fold, 2*fold) take frame t-1's, the rest stay; missing neighbours at the clip ends are zeros.
    """
    frames, length, channels = tokens.shape
    if frames % num_frames:
        raise ValueError(f"temporal shift got {frames} frames, not a multiple of num_frames={num_frames}")
    fold = channels // fold_div
    video = tokens.view(frames // num_frames, num_frames, length, channels)
    cls_token, patches = video[:, :, :1], video[:, :, 1:]
    # F.pad pads from the last dim backwards: (channels, tokens, time); one zero frame at the chosen end.
    from_next = F.pad(patches[..., :fold], (0, 0, 0, 0, 0, 1))[:, 1:]
    from_previous = F.pad(patches[..., fold:2 * fold], (0, 0, 0, 0, 1, 0))[:, :-1]
    shifted = torch.cat([from_next, from_previous, patches[..., 2 * fold:]], dim=-1)
    return torch.cat([cls_token, shifted], dim=2).view(frames, length, channels)


class TemporalShiftBlock(nn.Module):
    """A ViT residual block that first shifts its input tokens in time (`net` is the wrapped block)."""

    def __init__(self, net: nn.Module, num_frames: int, fold_div: int = 8) -> None:
        super().__init__()
        self.net = net
        self.num_frames = num_frames
        self.fold_div = fold_div

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        # open_clip calls blocks as block(x, attn_mask=...) or, under checkpointing, block(x, None, None, mask).
        return self.net(temporal_shift(x, self.num_frames, self.fold_div), *args, **kwargs)


class JointSpaceTime(nn.Module):
    """Replaces a ViT's `ln_pre`: joins each video's frame tokens into one sequence, then applies the norm.

    Input (videos * num_frames, 1 + patches, width) -> output (videos, 1 + patches * num_frames, width);
    the class token is the (frame-independent) one of the video's first frame.
    """

    def __init__(self, norm: nn.Module, num_frames: int, width: int) -> None:
        super().__init__()
        self.norm = norm
        self.num_frames = num_frames
        self.time_embedding = nn.Parameter(width ** -0.5 * torch.randn(num_frames, width))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        frames, length, width = tokens.shape
        if frames % self.num_frames:
            raise ValueError(f"joint space-time got {frames} frames, not a multiple of num_frames={self.num_frames}")
        video = tokens.view(frames // self.num_frames, self.num_frames, length, width)
        cls_token = video[:, 0, :1]
        patches = video[:, :, 1:] + self.time_embedding.to(tokens.dtype)[None, :, None]
        # Patch-major, time-minor order; attention does not depend on the order, only on the embeddings.
        patches = patches.transpose(1, 2).reshape(video.shape[0], -1, width)
        return self.norm(torch.cat([cls_token, patches], dim=1))


def _require_vit(visual: nn.Module, option: str) -> VisionTransformer:
    if not isinstance(visual, VisionTransformer):
        raise ValueError(
            f"{option} needs an open_clip ViT image tower (VisionTransformer); this model's image tower is "
            f"{type(visual).__name__}. Choose a ViT model (e.g. ViT-B-32, ViT-B-16) or turn {option} off.")
    if not visual.transformer.batch_first:
        raise ValueError(f"{option} expects the ViT to run batch-first (N, L, D); this tower does not")
    return visual


def add_temporal_shift(visual: nn.Module, num_frames: int, fold_div: int = 8) -> None:
    """Wrap every residual block of an open_clip ViT in a `TemporalShiftBlock` (in place)."""
    vit = _require_vit(visual, "Shift (tsm)")
    vit.transformer.resblocks = nn.ModuleList(
        TemporalShiftBlock(block, num_frames, fold_div) for block in vit.transformer.resblocks)


def add_joint_space_time(visual: nn.Module, num_frames: int) -> None:
    """Replace an open_clip ViT's `ln_pre` with `JointSpaceTime` (in place)."""
    vit = _require_vit(visual, "Joint (joint)")
    width = vit.class_embedding.shape[-1]
    vit.ln_pre = JointSpaceTime(vit.ln_pre, num_frames, width).to(vit.class_embedding)
