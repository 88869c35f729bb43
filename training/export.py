"""`export`: a checkpoint's model in another project's format.

- `original`: the original ActionCLIP checkpoint layout (`model_state_dict` + `fusion_model_state_dict`),
  for the original code; a model it would run differently (GELU towers, this trainer's Conv_1D layout) is
  refused with the reason.
- `open_clip`: the CLIP towers as an open_clip state dict (`OUT`: .safetensors, .pt or .bin) plus the arch's
  open_clip model config with the towers' activation (`OUT` with .json), so that
  `open_clip.add_model_config("OUT.json"); open_clip.create_model("<OUT's stem>", pretrained="OUT")` builds
  them. The fusion head is not part of an open_clip model, and towers changed by Shift or Joint are refused:
  open_clip has neither, so the exported towers would compute other embeddings.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import open_clip
import torch

from actionclip import ActionCLIP, resolve_model_name, save_original_checkpoint
from training import components
from training.config import ConfigError, RunConfig
from training.logs import console

FORMATS = ("original", "open_clip")
OPEN_CLIP_SUFFIXES = (".safetensors", ".pt", ".bin")


def check_outputs(paths: Sequence[Path], overwrite: bool) -> None:
    """Refuse to replace an existing output file unless `overwrite` (launch.py --overwrite)."""
    existing = next((path for path in paths if path.exists()), None)
    if existing is not None and not overwrite:
        raise ConfigError(f"{existing} already exists: pass --overwrite to replace it, or choose another output path")


def open_clip_state_dict(model: ActionCLIP) -> dict[str, torch.Tensor]:
    """The state dict of `model.clip` as open_clip's own model holds it (a 0-dim logit scale)."""
    for option, on in (("Shift (tsm)", model.tsm), ("Joint (joint)", model.joint)):
        if on:
            raise ConfigError(f"this model's image tower was trained with {option}, which mixes the frames of a "
                              f"video; open_clip's tower has no such step, so exported it would compute other "
                              f"embeddings. Export it with --format original instead")
    state = {name: value.detach().cpu().contiguous() for name, value in model.clip.state_dict().items()}
    state["logit_scale"] = state["logit_scale"].reshape(())
    return state


def open_clip_model_config(model: ActionCLIP, arch: str) -> dict:
    """The open_clip model config of `arch` with the activation `model`'s towers run."""
    return {**open_clip.get_model_config(resolve_model_name(arch)), "quick_gelu": model.quick_gelu}


def _save_open_clip(model: ActionCLIP, arch: str, out: Path) -> list[Path]:
    state = open_clip_state_dict(model)
    config_path = out.with_suffix(".json")
    temporary = out.with_name(f".{out.name}.tmp")
    if out.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(temporary))
    else:
        torch.save(state, temporary)
    temporary.replace(out)
    config_path.write_text(json.dumps(open_clip_model_config(model, arch), indent=2) + "\n")
    return [out, config_path]


def _save_original(model: ActionCLIP, out: Path) -> list[Path]:
    temporary = out.with_name(f".{out.name}.tmp")
    try:
        save_original_checkpoint(model, temporary)
    except ValueError as error:  # a model the original code would run differently: the message says why
        raise ConfigError(f"export --format original: {error}") from error
    temporary.replace(out)
    return [out]


def export(config: RunConfig, checkpoint_path: str, to: str, out: str, overwrite: bool) -> list[Path]:
    """Write the model of `checkpoint_path` (built as test mode builds it) to `out` in format `to`; the paths
    written."""
    if to not in FORMATS:
        raise ConfigError(f"export needs --format {' or '.join(FORMATS)}, got {to!r}")
    target = Path(out)
    if to == "open_clip" and target.suffix not in OPEN_CLIP_SUFFIXES:
        raise ConfigError(f"export --format open_clip {target}: the weights file must end with "
                          f"{' / '.join(OPEN_CLIP_SUFFIXES)}")
    check_outputs([target, target.with_suffix(".json")] if to == "open_clip" else [target], overwrite)
    config, model, _ = components.model_for_evaluation(config, checkpoint_path, torch.device("cpu"))
    target.parent.mkdir(parents=True, exist_ok=True)
    if to == "original":
        written = _save_original(model, target)
        console.print(f"wrote {target}: original ActionCLIP checkpoint ({model.sim_header} head, "
                      f"{'QuickGELU' if model.quick_gelu else 'GELU'})")
        return written
    written = _save_open_clip(model, config.network.arch, target)
    size = model.image_size[0]
    console.print(f"wrote {target} (open_clip state dict of the CLIP towers) and {written[1]} (model config, "
                  f"quick_gelu {model.quick_gelu}); load them with:\n"
                  f"  open_clip.add_model_config({str(written[1])!r})\n"
                  f"  open_clip.create_model({target.stem!r}, pretrained={str(target)!r})\n"
                  f"images: {size} px, mean {model.image_mean}, std {model.image_std}. Not exported: the "
                  f"{model.sim_header} fusion head (open_clip embeds images, not videos)")
    return written
