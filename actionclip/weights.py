"""open_clip model configs, and where CLIP weights come from: an open_clip tag, a local file, or none.

A tag downloads through open_clip when the hub is reachable and is read from the local cache otherwise;
an unreachable hub with nothing cached fails within seconds instead of sitting through the hub's retries.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import tempfile
import threading
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

import open_clip
import torch
from open_clip.pretrained import get_pretrained_cfg, list_pretrained_tags_by_model
from torch import nn

from actionclip.original_ckpt import is_original_checkpoint
from actionclip.safe_load import load_weights_only

SHIPPED_MODEL_CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "models"
NO_WEIGHTS = ("", "none", "random")
HUB_PROBE_TIMEOUT_S = 3.0
HF_HUB_PREFIX = "hf-hub:"
HF_HUB_CONFIG = "open_clip_config.json"  # an open_clip hub repository's model_cfg + preprocess_cfg
# OpenAI's `ViT-L/14@336px` is open_clip's `ViT-L-14-336`.
_OPENAI_RESOLUTION = re.compile(r"@(\d+)px$")
# Image preprocessing (mean, std, ...) of the models registered from a hub repository's config, by name.
_HUB_PREPROCESS: dict[str, dict[str, Any]] = {}
# The HF hub file open_clip fetches when a tag names only a repository, and its safetensors twin.
_HF_DEFAULT_FILES = ("open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin")
# Attributes OpenAI's TorchScript archives carry next to the weights.
_TORCHSCRIPT_EXTRAS = ("input_resolution", "context_length", "vocab_size")


@dataclass(frozen=True)
class WeightsSource:
    """Resolved `pretrained` value.

    kind: 'none' (random init), 'open_clip' (state dict file open_clip reads: .bin/.pt/.safetensors),
    'torchscript' (OpenAI CLIP archive, `state` holds its tensors) or 'actionclip' (original ActionCLIP
    training checkpoint, `state` holds it). A state dict file read here keeps its contents in `state` too,
    so whoever resolved it can look inside (a trainer's own checkpoint format) without reading it again.
    `quick_gelu` is the activation the weights were trained with, None when the file does not tell.
    """
    kind: str
    path: Optional[str] = None
    quick_gelu: Optional[bool] = None
    preprocess: dict[str, Any] = field(default_factory=dict)
    state: Optional[Mapping[str, Any]] = None


def register_model_configs(path: str | Path) -> None:
    """Make open_clip model-config JSONs (a file or a folder of them) buildable by name."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model config path {path} does not exist")
    open_clip.add_model_config(path)


def resolve_model_name(model_name: str, cache_dir: Optional[str] = None) -> str:
    """The open_clip model name `model_name` means, in the one spelling open_clip lists.

    Accepted: an open_clip name in any case (`vit-b-32`); OpenAI's and the original ActionCLIP's spelling
    (`ViT-B/32`, `ViT-L/14@336px`); a config of configs/models/; a path to a model-config JSON (registered,
    named by its stem); `hf-hub:org/name` when the local Hugging Face cache (`cache_dir`, default
    HF_HUB_CACHE / HF_HOME) holds the repository's open_clip_config.json (registered as `org--name`).
    """
    if model_name.startswith(HF_HUB_PREFIX):
        return _register_hub_config(model_name.removeprefix(HF_HUB_PREFIX), cache_dir)
    if model_name.endswith(".json") and Path(model_name).is_file():
        register_model_configs(model_name)
        return Path(model_name).stem
    spelled = _OPENAI_RESOLUTION.sub(r"-\1", model_name).replace("/", "-")
    known = _listed(spelled)
    if known is None and SHIPPED_MODEL_CONFIGS.is_dir():
        register_model_configs(SHIPPED_MODEL_CONFIGS)
        known = _listed(spelled)
    if known is None:
        nearest = difflib.get_close_matches(spelled, open_clip.list_models(), n=1)
        hint = f"did you mean {nearest[0]!r}? " if nearest else ""
        raise ValueError(
            f"unknown model {model_name!r}: {hint}not an open_clip model name (see open_clip.list_models()), "
            f"not in {SHIPPED_MODEL_CONFIGS}, not `hf-hub:org/name`, and not a path to an open_clip model-config "
            f".json file")
    return known


def _listed(name: str) -> Optional[str]:
    """`name` as open_clip lists it: the exact name, else the one name equal to it ignoring case."""
    names = open_clip.list_models()
    if name in names:
        return name
    matches = [listed for listed in names if listed.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def _register_hub_config(repo_id: str, cache_dir: Optional[str]) -> str:
    """Register the model config of HF hub repository `repo_id` from the local cache; its registered name."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_CACHE

    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"model {HF_HUB_PREFIX}{repo_id}: expected {HF_HUB_PREFIX}org/name")
    cached = try_to_load_from_cache(repo_id, HF_HUB_CONFIG, cache_dir=cache_dir)
    if not isinstance(cached, str):
        raise ValueError(
            f"model {HF_HUB_PREFIX}{repo_id}: its {HF_HUB_CONFIG} is not in the local Hugging Face cache "
            f"({cache_dir or HF_HUB_CACHE}); fetch it once where the hub is reachable (`hf download {repo_id} "
            f"{HF_HUB_CONFIG}`, with HF_HOME / HF_HUB_CACHE pointing at this cache), or pass a path to an open_clip "
            f"model-config .json")
    try:
        hub_config = json.loads(Path(cached).read_text())
        model_config = hub_config["model_cfg"]
        missing = [key for key in ("embed_dim", "vision_cfg", "text_cfg") if key not in model_config]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"model {HF_HUB_PREFIX}{repo_id}: {cached} is not an open_clip config with a "
                         f"'model_cfg' ({type(error).__name__}: {error})") from error
    if missing:
        raise ValueError(f"model {HF_HUB_PREFIX}{repo_id}: the 'model_cfg' of {cached} lacks {missing}")
    name = repo_id.replace("/", "--")
    # open_clip registers files, named by their stem; it reads them at once, so the file goes right after.
    with tempfile.TemporaryDirectory(prefix="actionclip-hub-config-") as folder:
        path = Path(folder) / f"{name}.json"
        path.write_text(json.dumps(model_config))
        register_model_configs(path)
    _HUB_PREPROCESS[name] = dict(hub_config.get("preprocess_cfg", {}))
    return name


def _hub_offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def _download_base_url(tag_cfg: Mapping[str, Any]) -> str:
    """The server open_clip would download this tag from (it prefers the HF hub when it can)."""
    if tag_cfg.get("hf_hub") and open_clip.pretrained.has_hf_hub():
        from huggingface_hub import constants
        return os.environ.get("HF_ENDPOINT", constants.ENDPOINT)
    return tag_cfg["url"]


def _head_request_answered(url: str, answered: list[bool]) -> None:
    parts = urlsplit(url)
    request = urllib.request.Request(f"{parts.scheme}://{parts.netloc}/", method="HEAD")
    try:
        urllib.request.urlopen(request, timeout=HUB_PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        pass  # any HTTP status means the server is there
    except (urllib.error.URLError, OSError, ValueError):
        return
    answered.append(True)


def _reachable(url: str) -> bool:
    """Whether an HTTP(S) server answers at `url` within a few seconds (proxy settings apply)."""
    answered: list[bool] = []
    # The socket timeout does not cover name resolution, which can hang far longer when DNS is
    # unreachable; a daemon thread bounds the whole probe.
    probe = threading.Thread(target=_head_request_answered, args=(url, answered), daemon=True)
    probe.start()
    probe.join(HUB_PROBE_TIMEOUT_S + 1.0)
    return bool(answered)


def _cached_tag_file(tag_cfg: Mapping[str, Any], cache_dir: Optional[str]) -> Optional[str]:
    """A copy of the tag's weights already on disk (HF hub cache or open_clip's URL cache), if any."""
    if tag_cfg.get("hf_hub") and open_clip.pretrained.has_hf_hub():
        from huggingface_hub import try_to_load_from_cache
        repo_id, filename = os.path.split(tag_cfg["hf_hub"])
        names = (filename,) if filename else _HF_DEFAULT_FILES
        for name in names:
            cached = try_to_load_from_cache(repo_id, name, cache_dir=cache_dir)
            if isinstance(cached, str):
                return cached
    if tag_cfg.get("url"):
        cached = Path(cache_dir or Path.home() / ".cache" / "clip") / os.path.basename(tag_cfg["url"])
        if cached.is_file():
            return str(cached)
    return None


def _tag_weights(model_name: str, tag: str, tag_cfg: Mapping[str, Any], cache_dir: Optional[str]) -> str:
    base_url = _download_base_url(tag_cfg)
    host = urlsplit(base_url).netloc
    if _hub_offline_env():
        problem = "HF_HUB_OFFLINE is set"
    elif not _reachable(base_url):
        problem = f"{host} cannot be reached (offline)"
    else:
        try:
            return open_clip.download_pretrained(dict(tag_cfg), cache_dir=cache_dir)
        except Exception as error:  # a proxy or mirror may answer yet not serve the file
            problem = f"the download from {host} failed ({type(error).__name__}: {error})"
    cached = _cached_tag_file(tag_cfg, cache_dir)
    if cached is not None:
        return cached
    raise RuntimeError(
        f"pretrained tag {tag!r} for model {model_name!r} is not in the local cache and {problem}. "
        f"Either fetch the weights once on a machine with network access (open_clip caches them), or pass a "
        f"local file as pretrained=/path/to/weights (an OpenAI CLIP .pt archive, an open_clip "
        f".bin/.pt/.safetensors state dict, or an original ActionCLIP checkpoint), or pretrained=none for "
        f"random initialisation.")


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") or name == "constants.pkl" for name in archive.namelist())


def read_weights_file(path: str | Path) -> WeightsSource:
    """The one place a local weights file's format is told apart: safetensors/numpy, an OpenAI TorchScript
    archive, an original ActionCLIP checkpoint, or another state dict (read once, kept in `state`)."""
    path = Path(path)
    if path.suffix in (".safetensors", ".npz", ".npy"):
        return WeightsSource("open_clip", str(path))
    if _is_torchscript(path):
        # OpenAI's released CLIP archives are TorchScript modules (TorchScript code + tensors), which
        # torch.load(weights_only=True) refuses; torch.jit.load builds them without arbitrary Python objects.
        state = torch.jit.load(str(path), map_location="cpu").state_dict()
        return WeightsSource("torchscript", str(path), quick_gelu=True, state=state)
    checkpoint = load_weights_only(path, "re-save them as a plain state dict (torch.save(model.state_dict(), "
                                          "path)) or as .safetensors")
    if is_original_checkpoint(checkpoint):
        # ActionCLIP fine-tunes OpenAI CLIP, trained with QuickGELU.
        return WeightsSource("actionclip", str(path), quick_gelu=True, state=checkpoint)
    return WeightsSource("open_clip", str(path), state=checkpoint if isinstance(checkpoint, Mapping) else None)


def resolve_weights(model_name: str, pretrained: str | WeightsSource | None,
                    cache_dir: Optional[str] = None) -> WeightsSource:
    """What `pretrained` means for `model_name`: none, an open_clip tag (fetched/cached now) or a local file
    (a WeightsSource already resolved is returned as it is)."""
    if isinstance(pretrained, WeightsSource):
        return pretrained
    if pretrained is None or str(pretrained).lower() in NO_WEIGHTS:
        return WeightsSource("none")
    tag_cfg = get_pretrained_cfg(model_name, str(pretrained))
    if tag_cfg:
        preprocess = {key: tag_cfg[key] for key in ("mean", "std", "interpolation", "resize_mode") if key in tag_cfg}
        return WeightsSource("open_clip", _tag_weights(model_name, str(pretrained), tag_cfg, cache_dir),
                             quick_gelu=tag_cfg.get("quick_gelu", False), preprocess=preprocess)
    path = Path(pretrained)
    if path.is_file():
        return read_weights_file(path)
    tags = list_pretrained_tags_by_model(model_name)
    raise ValueError(
        f"pretrained={pretrained!r} is neither an open_clip tag for {model_name!r} "
        f"(known tags: {', '.join(tags) or 'none'}) nor an existing file; use 'none' for random initialisation")


def create_clip(model_name: str, source: WeightsSource, quick_gelu: Optional[bool] = None) -> nn.Module:
    """Build the open_clip model and load `source`'s CLIP weights into it ('actionclip' loads later)."""
    if quick_gelu is None:
        quick_gelu = source.quick_gelu
    overrides = {} if quick_gelu is None else {"quick_gelu": quick_gelu}
    preprocess = {**_HUB_PREPROCESS.get(model_name, {}), **source.preprocess}
    clip = open_clip.create_model(model_name, pretrained=None, force_preprocess_cfg=preprocess, **overrides)
    try:
        if source.kind == "open_clip":
            open_clip.load_checkpoint(clip, source.path)
        elif source.kind == "torchscript":
            # TorchScript also saves non-persistent buffers (e.g. the text attention mask), which a state
            # dict does not hold.
            skip = {name for name, _ in clip.named_buffers()} - set(clip.state_dict()) | set(_TORCHSCRIPT_EXTRAS)
            clip.load_state_dict({k: v for k, v in source.state.items() if k not in skip})
    except RuntimeError as error:
        raise ValueError(
            f"{source.path}: weights do not fit model {model_name!r} ({error}). "
            f"Check that the model name matches the checkpoint's architecture.") from error
    return clip
