"""Import and export of original ActionCLIP training checkpoints.

Layout: {'epoch', 'model_state_dict', 'fusion_model_state_dict', 'optimizer_state_dict'}. The CLIP part
uses OpenAI CLIP key names, which open_clip's `CLIP` shares, including the `.net` level of Shift-wrapped
visual blocks (ours wraps the same way). The fusion part carries DataParallel's `module.` prefix and, as
in the original code, a frame position table for every head but `meanP`, used only by `Transf`.

What the weights alone do not say: the original runs OpenAI CLIP's QuickGELU, so only a QuickGELU model
imports them, and its Conv_1D head reads its input in its own layout, which an imported Conv_1D head takes
on and an exported one must already have.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import open_clip
import torch
from torch import nn

from actionclip.fusion import MAX_FRAMES
from actionclip.safe_load import load_weights_only

if TYPE_CHECKING:
    from actionclip.model import ActionCLIP

CHECKPOINT_KEYS = ("model_state_dict", "fusion_model_state_dict")
_FUSION_PREFIX = "module."
_FRAME_POSITIONS = "frame_position_embeddings.weight"
_HEADS_WITH_UNUSED_FRAME_POSITIONS = ("Conv_1D", "LSTM", "Transf_cls")
# Original key -> ours where the Joint option moved things: our JointSpaceTime wraps ln_pre.
_JOINT_KEYS = {
    "visual.time_embedding": "visual.ln_pre.time_embedding",
    "visual.ln_pre.weight": "visual.ln_pre.norm.weight",
    "visual.ln_pre.bias": "visual.ln_pre.norm.bias",
}
_CLIP_EXTRAS = ("input_resolution", "context_length", "vocab_size")


def is_original_checkpoint(contents: Any) -> bool:
    """Whether a loaded file is an original ActionCLIP checkpoint (its layout is checked when imported)."""
    return isinstance(contents, Mapping) and CHECKPOINT_KEYS[0] in contents


def read_original_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load an original ActionCLIP checkpoint with torch.load(weights_only=True) and check its layout."""
    checkpoint = load_weights_only(path, "re-save the checkpoint without other Python objects")
    _check_layout(checkpoint, str(path))
    return checkpoint


def _check_layout(checkpoint: Any, source: str) -> None:
    if not isinstance(checkpoint, Mapping) or not all(key in checkpoint for key in CHECKPOINT_KEYS):
        found = sorted(checkpoint)[:10] if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise ValueError(f"{source}: not an original ActionCLIP checkpoint; expected keys {CHECKPOINT_KEYS}, "
                         f"found {found}")
    for key in CHECKPOINT_KEYS:
        bad = [k for k, v in checkpoint[key].items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise ValueError(f"{source}: {key} holds non-tensor entries {bad[:5]}")


def _original_sim_header(fusion_state: Mapping[str, torch.Tensor]) -> str:
    if "transformer.cls_token" in fusion_state:
        return "Transf_cls"
    if any(key.startswith("transformer.resblocks.") for key in fusion_state):
        return "Transf"
    if any(key.startswith("lstm_visual.") for key in fusion_state):
        return "LSTM"
    if "shift.weight" in fusion_state:
        return "Conv_1D"
    if not fusion_state:
        return "meanP"
    raise ValueError(f"unrecognised fusion head with keys {sorted(fusion_state)[:8]}")


def _check_option(source: str, option: str, in_checkpoint: bool, in_model: bool) -> None:
    if in_checkpoint != in_model:
        raise ValueError(f"{source}: the checkpoint was trained with {option} {'on' if in_checkpoint else 'off'}, "
                         f"the model was built with it {'on' if in_model else 'off'}; build the model to match")


def _load(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, part: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"{source}: {part} does not fit the model ({error})") from error


def _require_openai_layout(model: "ActionCLIP") -> None:
    if not isinstance(model.clip, open_clip.CLIP):
        raise ValueError(f"original ActionCLIP checkpoints use OpenAI CLIP's layout; this model's CLIP is "
                         f"{type(model.clip).__name__}, which does not share it")


def _require_quick_gelu(model: "ActionCLIP", source: str) -> None:
    if not model.quick_gelu:
        raise ValueError(f"{source}: original ActionCLIP checkpoints are OpenAI CLIP fine-tunes and run QuickGELU, "
                         f"but this model was built with GELU, so it would compute other embeddings from the same "
                         f"weights; build it with quick_gelu=True (network.quick_gelu: true), or leave quick_gelu "
                         f"unset (network.quick_gelu: null), which takes QuickGELU for an original checkpoint")


def import_original_checkpoint(
    model: "ActionCLIP",
    checkpoint: Mapping[str, Any] | str | Path,
    source: str = "original checkpoint",
) -> None:
    """Load an original ActionCLIP checkpoint (a path, or a loaded dict named `source` in errors) into
    `model` in place; fp16 weights are cast to the model's dtype."""
    if isinstance(checkpoint, Mapping):
        _check_layout(checkpoint, source)
    else:
        source = str(checkpoint)
        checkpoint = read_original_checkpoint(checkpoint)
    _require_openai_layout(model)
    _require_quick_gelu(model, source)

    clip_state = {k: v for k, v in checkpoint["model_state_dict"].items() if k not in _CLIP_EXTRAS}
    has_shift = any(".net." in k for k in clip_state if k.startswith("visual.transformer.resblocks."))
    _check_option(source, "Shift (tsm)", has_shift, model.tsm)
    _check_option(source, "Joint (joint)", "visual.time_embedding" in clip_state, model.joint)
    if model.joint:
        clip_state = {_JOINT_KEYS.get(k, k): v for k, v in clip_state.items()}
    if "logit_scale" in clip_state:
        clip_state["logit_scale"] = clip_state["logit_scale"].reshape(model.clip.logit_scale.shape)
    _load(model.clip, clip_state, source, "model_state_dict")

    fusion_state = {k.removeprefix(_FUSION_PREFIX): v for k, v in checkpoint["fusion_model_state_dict"].items()}
    sim_header = _original_sim_header(fusion_state)
    if sim_header != model.sim_header:
        raise ValueError(f"{source}: the checkpoint's fusion head is {sim_header}, the model's is "
                         f"{model.sim_header}; build the model with sim_header={sim_header!r}")
    if sim_header in _HEADS_WITH_UNUSED_FRAME_POSITIONS:
        fusion_state.pop(_FRAME_POSITIONS, None)
    _load(model.fusion, fusion_state, source, "fusion_model_state_dict")
    if sim_header == "Conv_1D":
        model.fusion.layout = "original"  # the layout these weights were trained in


def export_original_checkpoint(model: "ActionCLIP", epoch: int = 0) -> dict[str, Any]:
    """`model` in the original ActionCLIP checkpoint layout (loadable by the original code)."""
    _require_openai_layout(model)
    if not model.quick_gelu:
        raise ValueError("this model uses GELU, but original ActionCLIP checkpoints are OpenAI CLIP fine-tunes that "
                         "the original code runs with QuickGELU: exported, these weights would predict differently. "
                         "Export a model built with quick_gelu=True (network.quick_gelu: true)")
    if model.sim_header == "Conv_1D" and model.conv1d_layout != "original":
        raise ValueError(f"this model's Conv_1D head has conv1d_layout {model.conv1d_layout!r}: its conv runs over "
                         f"each channel's values in time, while the original code feeds it the (B, T, D) frames "
                         f"re-read as (B, D, T), so these weights would predict differently there. Only a Conv_1D "
                         f"model with conv1d_layout 'original' (network.conv1d_layout: original; importing an "
                         f"original Conv_1D checkpoint selects it) exports to the original format")
    to_original = {ours: original for original, ours in _JOINT_KEYS.items()} if model.joint else {}
    clip_state = {to_original.get(k, k): v for k, v in model.clip.state_dict().items()}
    clip_state["logit_scale"] = clip_state["logit_scale"].reshape(())  # the original stores a 0-dim scale
    fusion_state = {_FUSION_PREFIX + k: v for k, v in model.fusion.state_dict().items()}
    if model.sim_header in _HEADS_WITH_UNUSED_FRAME_POSITIONS:
        # Unused by these heads, but the original loads fusion weights strictly and expects the table.
        reference = next(model.fusion.parameters())
        fusion_state[_FUSION_PREFIX + _FRAME_POSITIONS] = reference.new_zeros(MAX_FRAMES, model.embed_dim)
    return {"epoch": epoch, "model_state_dict": clip_state, "fusion_model_state_dict": fusion_state,
            "optimizer_state_dict": {}}


def save_original_checkpoint(model: "ActionCLIP", path: str | Path, epoch: int = 0) -> None:
    """Write `export_original_checkpoint(model, epoch)` to `path` with torch.save."""
    torch.save(export_original_checkpoint(model, epoch), path)
