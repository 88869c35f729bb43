"""Stochastic depth (drop path) and embedding dropout in open_clip's towers: the original ActionCLIP's
`drop_out` and `emb_dropout` (its clip/model.py applies both to the image and the text tower).

Both are forward hooks on modules the towers already have, so open_clip's forward, gradient checkpointing
(which replays the RNG state: a recomputed block drops what its forward dropped) and the state dict (every
parameter keeps its name) are unchanged; both act in training mode only.

- Drop path: the residual branches of every block (the attention and MLP branches of a transformer block, at
  their `ls_1` / `ls_2` outputs; a ModifiedResNet bottleneck's branch at its `bn3` output) are zeroed with
  probability p_k, and kept ones scaled by 1 / (1 - p_k) (timm's `drop_path`); p_k rises linearly from 0 at
  a tower's first block to the rate at its last, as in timm and the original. The image tower decides once
  per clip: all frames of a clip keep or drop a block together. The text tower decides per prompt.
- Embedding dropout: dropout on the token embeddings once the positional embedding is added, before the
  transformer: a ViT's tokens before `ln_pre` (after Joint's time embedding), the text tower's before its
  transformer. A ModifiedResNet image tower has no token embeddings, so there only the text tower's drop.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import open_clip
import torch
import torch.nn.functional as F
from open_clip.modified_resnet import Bottleneck, ModifiedResNet
from open_clip.transformer import (CustomResidualAttentionBlock, ResidualAttentionBlock, TextTransformer,
                                   VisionTransformer)
from timm.layers import drop_path as timm_drop_path
from torch import nn

from actionclip.temporal import JointSpaceTime, resnet_bottlenecks


def check_rate(name: str, rate: float) -> None:
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {rate}")


def _transformer_blocks(transformer: nn.Module) -> list[nn.Module]:
    # Found by type, so wrappers around the blocks (Shift's TemporalShiftBlock) do not hide them.
    return [module for module in transformer.modules()
            if isinstance(module, (ResidualAttentionBlock, CustomResidualAttentionBlock))]


def _residual_branches(block: nn.Module) -> list[nn.Module]:
    return [block.bn3] if isinstance(block, Bottleneck) else [block.ls_1, block.ls_2]


def _drop_path_hook(rate: float, group: int) -> Callable:
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        if not module.training:
            return output
        # (clips * group, ...) -> (clips, group, ...): one keep/drop draw per clip.
        grouped = output.reshape(-1, group, *output.shape[1:])
        return timm_drop_path(grouped, rate, training=True).reshape(output.shape)
    return hook


def _dropout_hook(rate: float) -> Callable:
    def hook(module: nn.Module, inputs: tuple) -> tuple:
        return (F.dropout(inputs[0], rate, module.training), *inputs[1:])
    return hook


def add_drop_path(blocks: Sequence[nn.Module], rate: float, group: int = 1) -> None:
    """Drop path on the residual branches of `blocks` (one tower's, in order), rising linearly to `rate`;
    `group` consecutive samples of a batch (a clip's frames) share each draw."""
    for block, block_rate in zip(blocks, torch.linspace(0, rate, len(blocks)).tolist()):
        if block_rate > 0:
            for branch in _residual_branches(block):
                branch.register_forward_hook(_drop_path_hook(block_rate, group))


def _text_transformer(clip: nn.Module) -> Optional[nn.Module]:
    """The text tower's transformer: open_clip.CLIP's own, or a CustomTextCLIP's TextTransformer's."""
    if isinstance(clip, open_clip.CLIP):
        return clip.transformer
    text = getattr(clip, "text", None)
    return text.transformer if isinstance(text, TextTransformer) else None


def add_tower_dropout(clip: nn.Module, drop_path: float, emb_dropout: float, frames_per_clip: int) -> None:
    """Drop path at `drop_path` and embedding dropout at `emb_dropout` in both towers of an open_clip model,
    in place (0: off). `frames_per_clip`: consecutive image-tower samples that make one clip (1 with Joint,
    whose tower sees one sequence per clip)."""
    if not (drop_path or emb_dropout):
        return
    visual, text = clip.visual, _text_transformer(clip)
    if not isinstance(visual, (VisionTransformer, ModifiedResNet)) or text is None:
        raise ValueError(f"drop_path and emb_dropout need open_clip's ViT or ModifiedResNet image tower and its "
                         f"transformer text tower; this model has {type(visual).__name__} and "
                         f"{type(getattr(clip, 'text', clip)).__name__}. Set both to 0")
    if isinstance(visual, ModifiedResNet):
        image_blocks, image_tokens = resnet_bottlenecks(visual), None
    else:
        image_blocks = _transformer_blocks(visual.transformer)
        image_tokens = visual.ln_pre.norm if isinstance(visual.ln_pre, JointSpaceTime) else visual.ln_pre
    if drop_path:
        add_drop_path(image_blocks, drop_path, frames_per_clip)
        add_drop_path(_transformer_blocks(text), drop_path)
    if emb_dropout:
        for module in (image_tokens, text):
            if module is not None:
                module.register_forward_pre_hook(_dropout_hook(emb_dropout))
