"""Optimiser parameter groups (text / visual / fusion, decay / no decay) and tower freezing."""
from __future__ import annotations

from typing import Any

from torch import nn

# Parameters added by the temporal options, not part of the CLIP image tower's pretrained weights.
_TEMPORAL_PARAMETERS = ("time_embedding",)
_NO_DECAY_NAME_PARTS = ("embedding", "pos_embed", "cls_token", "logit_scale", "logit_bias")


def _tower(name: str) -> str:
    if name.startswith("fusion."):
        return "fusion"
    if name.startswith("clip.visual."):
        return "visual"
    return "text"


def _no_decay(name: str, ndim: int) -> bool:
    # Biases, norm scales (all 1-D) and embeddings / position tables / scales are not decayed.
    return ndim < 2 or any(part in name for part in _NO_DECAY_NAME_PARTS)


def freeze_towers(model: nn.Module, fix_text: bool = False, fix_img: bool = False) -> None:
    """Freeze CLIP's text tower (`fix_text`) and/or image tower (`fix_img`) in place.

    The logit scale, the fusion head and the Joint time embedding (new, not CLIP weights) stay trainable.
    """
    for name, param in model.named_parameters():
        tower = _tower(name)
        if name.endswith(("logit_scale", "logit_bias")) or name.endswith(_TEMPORAL_PARAMETERS):
            continue
        if (tower == "text" and fix_text) or (tower == "visual" and fix_img):
            param.requires_grad_(False)


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    ratio: float = 1.0,
    f_ratio: float = 10.0,
) -> list[dict[str, Any]]:
    """Plain torch param-group dicts for an `ActionCLIP` model's trainable parameters.

    Groups `text` (lr; includes the logit scale), `visual` (lr * ratio), `fusion` (lr * f_ratio), each split
    into `<tower>` (weight_decay) and `<tower>_no_decay` (0.0); empty groups are left out. Keys: 'params',
    'lr', 'weight_decay', 'name'.
    """
    tower_lr = {"text": lr, "visual": lr * ratio, "fusion": lr * f_ratio}
    groups: dict[str, dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        tower = _tower(name)
        no_decay = _no_decay(name, param.ndim)
        group_name = f"{tower}_no_decay" if no_decay else tower
        group = groups.setdefault(group_name, {
            "params": [], "lr": tower_lr[tower], "weight_decay": 0.0 if no_decay else weight_decay,
            "name": group_name})
        group["params"].append(param)
    order = [f"{tower}{suffix}" for tower in tower_lr for suffix in ("", "_no_decay")]
    return [groups[name] for name in order if name in groups]
