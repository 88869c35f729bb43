"""In-network (`Shift`) and pre-network (`Joint`) temporal modelling for open_clip's image towers.

Both are added to an already built (and weight-loaded) image tower by wrapping its modules, so open_clip's
own forward, pooling, projection and gradient checkpointing keep working unchanged:

- `Shift` on a ViT wraps every residual block as `block -> TemporalShiftBlock(net=block)`, which shifts a
  slice of the patch-token channels between neighbouring frames before the block runs. The extra `.net`
  level in the parameter names is the same one the original ActionCLIP checkpoints have.
- `Shift` on a ModifiedResNet (RN50, ...) wraps the first 1x1 conv of every bottleneck, as TSM does: the
  residual branch sees feature-map channels shifted in time, the identity path does not.
- `Joint` wraps a ViT's `ln_pre`: the frame tokens of one video are joined into a single sequence (one
  class token, then all frames' patch tokens, each frame's tokens plus a learned time embedding) before the
  pre-norm, so the transformer attends across space and time and the tower returns one embedding per video.
"""
from __future__ import annotations

import torch
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer
from torch import nn


def shift_channels(x: torch.Tensor, num_frames: int, fold_div: int = 8, channel_dim: int = -1) -> torch.Tensor:
    """Shift channels across frames: `x` is (videos * num_frames, ...), frames of one video consecutive.

    With `fold = channels // fold_div`, channels [0, fold) of frame t take frame t+1's values, channels
    [fold, 2*fold) take frame t-1's, the rest stay; missing neighbours at the clip ends are zeros.
    """
    frames = x.shape[0]
    if frames % num_frames:
        raise ValueError(f"temporal shift got {frames} frames, not a multiple of num_frames={num_frames}")
    dim = (channel_dim % x.ndim) + 1  # the channel axis once the frames are split into (videos, time)
    fold = x.shape[dim - 1] // fold_div
    video = x.reshape(frames // num_frames, num_frames, *x.shape[1:])
    shifted = torch.zeros_like(video)
    shifted.narrow(dim, 0, fold)[:, :-1] = video.narrow(dim, 0, fold)[:, 1:]
    shifted.narrow(dim, fold, fold)[:, 1:] = video.narrow(dim, fold, fold)[:, :-1]
    rest = video.shape[dim] - 2 * fold
    shifted.narrow(dim, 2 * fold, rest).copy_(video.narrow(dim, 2 * fold, rest))
    return shifted.view(x.shape)


def temporal_shift(tokens: torch.Tensor, num_frames: int, fold_div: int = 8) -> torch.Tensor:
    """`shift_channels` for ViT tokens (videos * num_frames, 1 + patches, channels); the class token
    (index 0) is left untouched."""
    shifted = shift_channels(tokens[:, 1:], num_frames, fold_div)
    return torch.cat([tokens[:, :1], shifted], dim=1)


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


class TemporalShiftConv(TemporalShiftBlock):
    """A conv (`net`) that first shifts its (frames, channels, H, W) input's channels in time."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(shift_channels(x, self.num_frames, self.fold_div, channel_dim=1))


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


def _require_vit(visual: nn.Module, option: str, towers: str = "ViT image tower (VisionTransformer)") -> VisionTransformer:
    if not isinstance(visual, VisionTransformer):
        raise ValueError(
            f"{option} needs an open_clip {towers}; this model's image tower is {type(visual).__name__}. "
            f"Choose a ViT model (e.g. ViT-B-32, ViT-B-16) or turn {option} off.")
    if not visual.transformer.batch_first:
        raise ValueError(f"{option} expects the ViT to run batch-first (N, L, D); this tower does not")
    return visual


def resnet_bottlenecks(visual: ModifiedResNet) -> list[nn.Module]:
    """Every bottleneck of a ModifiedResNet, stage by stage."""
    return [block for stage in (visual.layer1, visual.layer2, visual.layer3, visual.layer4) for block in stage]


def add_temporal_shift(visual: nn.Module, num_frames: int, fold_div: int = 8) -> None:
    """Add Shift to an open_clip image tower in place: every ViT residual block is wrapped in a
    `TemporalShiftBlock`, or every ModifiedResNet bottleneck's `conv1` in a `TemporalShiftConv`."""
    if isinstance(visual, ModifiedResNet):
        bottlenecks = resnet_bottlenecks(visual)
        _check_fold(min(block.conv1.in_channels for block in bottlenecks), fold_div)
        for bottleneck in bottlenecks:
            bottleneck.conv1 = TemporalShiftConv(bottleneck.conv1, num_frames, fold_div)
        return
    vit = _require_vit(visual, "Shift (tsm)", towers="ViT or ModifiedResNet (RN50, ...) image tower")
    _check_fold(vit.class_embedding.shape[-1], fold_div)
    vit.transformer.resblocks = nn.ModuleList(
        TemporalShiftBlock(block, num_frames, fold_div) for block in vit.transformer.resblocks)


def _check_fold(channels: int, fold_div: int) -> None:
    if fold_div < 2 or channels // fold_div == 0:
        raise ValueError(f"shift_div {fold_div} shifts no channels of a tower whose narrowest shifted input has "
                         f"{channels}; choose shift_div between 2 and {channels}")


def add_joint_space_time(visual: nn.Module, num_frames: int) -> None:
    """Replace an open_clip ViT's `ln_pre` with `JointSpaceTime` (in place)."""
    vit = _require_vit(visual, "Joint (joint)")
    width = vit.class_embedding.shape[-1]
    vit.ln_pre = JointSpaceTime(vit.ln_pre, num_frames, width).to(vit.class_embedding)
