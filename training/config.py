"""Run configuration: defaults, YAML loading, `--set` overrides and validation that names the bad key.

Section and key names follow the original ActionCLIP configs where they fit (`num_segments`, `sim_header`,
`tsm`, `joint`, `ratio`, `f_ratio`, `lr_warmup_step`, `clip_gradient`, `eval_freq`, ...).
"""
from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml

from actionclip.fusion import SIM_HEADERS
from pipelines.batch import PRECISION_DTYPES
from pipelines.factory import BACKENDS, DECODE_DEVICES

# Every key a config may set, with its default; `None` means "no value" and accepts any type.
DEFAULTS: dict[str, Any] = {
    "seed": 1024,
    "data": {
        "dataset": "dataset",
        "train_shards": None,   # shard folder, manifest or list of tars
        "val_shards": None,
        "labels": None,         # CSV `id,name`; default: the class names in the shard manifest
        "num_segments": 8,
        "input_size": 224,
        "batch_size": 32,       # per rank (DeepSpeed micro batch)
        "workers": 4,           # DALI threads (or baseline DataLoader workers)
        "prefetch": 2,
        "decode_device": "auto",
        "sparse_decode": True,  # decode only the GOPs that hold the sampled frames
        "backend": "dali",
        "flip": True,
        "scales": [1.0, 0.875, 0.75, 0.66],
        "color_jitter_prob": 0.8,
        "grayscale_prob": 0.2,
        "randaug": {"N": 0, "M": 9},
        "frame_interval": None,  # dense sampling stride instead of TSN segments
        "shuffle_buffer": 1024,
    },
    "network": {
        "arch": "ViT-B-32",
        "pretrained": "openai",
        "sim_header": "Transf",
        "tsm": False,
        "zero_init_residual": True,  # RN towers from scratch: False starts the residual branches open
        "joint": False,
        "fix_text": False,
        "fix_img": False,
        "grad_checkpointing": False,
    },
    "solver": {
        "epochs": 50,
        "lr": 5.0e-6,
        "lr_warmup_step": 5,    # warm-up epochs
        "ratio": 1.0,           # visual lr = lr * ratio
        "f_ratio": 10.0,        # fusion head lr = lr * f_ratio
        "weight_decay": 0.2,
        "betas": [0.9, 0.98],
        "eps": 1.0e-8,
        "clip_gradient": 20.0,
        "grad_accumulation_steps": 1,
    },
    "deepspeed": {
        "zero_stage": 1,
        "precision": "bf16",    # bf16 | fp16 | fp32
        "config": {},           # merged last into the generated DeepSpeed JSON
    },
    "logging": {
        "exp_dir": "runs/experiment",
        "print_freq": 10,
        "eval_freq": 1,
        "tensorboard": True,
        "csv": True,
        "wandb": False,
        "wandb_project": "actionclip",
    },
    "test": {
        "shards": None,         # default: data.val_shards
        "labels": None,         # default: data.labels
        "num_clips": 1,
        "num_crops": 1,
        "batch_size": None,     # default: data.batch_size
        "checkpoint": None,     # default: <exp_dir>/checkpoints/best.pt
    },
}

CHOICES = {
    "data.decode_device": DECODE_DEVICES,
    "data.backend": BACKENDS,
    "network.sim_header": SIM_HEADERS,
    "deepspeed.precision": tuple(PRECISION_DTYPES),
    "test.num_crops": (1, 3),
}
# Numeric keys' allowed ranges, (lowest, highest), None for no bound.
RANGES = {
    "data.num_segments": (1, None), "data.input_size": (1, None), "data.batch_size": (1, None),
    "data.workers": (1, None), "data.prefetch": (1, None), "data.frame_interval": (1, None),
    "data.shuffle_buffer": (1, None), "data.color_jitter_prob": (0, 1), "data.grayscale_prob": (0, 1),
    "solver.epochs": (1, None), "solver.lr": (0, None), "solver.lr_warmup_step": (0, None), "solver.ratio": (0, None),
    "solver.f_ratio": (0, None), "solver.weight_decay": (0, None), "solver.eps": (0, None),
    "solver.clip_gradient": (0, None), "solver.grad_accumulation_steps": (1, None), "deepspeed.zero_stage": (0, 3),
    "logging.print_freq": (1, None), "logging.eval_freq": (1, None), "test.num_clips": (1, None),
    "test.batch_size": (1, None),
}
OPEN_SECTIONS = {"deepspeed.config"}  # free-form: any DeepSpeed field


class ConfigError(ValueError):
    """A config that cannot run; the message names the key and what to do."""


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted not in OPEN_SECTIONS and dotted != "data.randaug":
            flat.update(_flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


VALID_KEYS = _flatten(DEFAULTS)


def _nearest(key: str) -> str:
    match = difflib.get_close_matches(key, list(VALID_KEYS), n=1, cutoff=0.5)
    leaf = difflib.get_close_matches(key.rsplit(".", 1)[-1], [k.rsplit(".", 1)[-1] for k in VALID_KEYS], n=1)
    if not match and leaf:
        match = [k for k in VALID_KEYS if k.endswith("." + leaf[0]) or k == leaf[0]]
    return f"; did you mean '{match[0]}'?" if match else ""


def _check_type(key: str, value: Any, default: Any, source: str) -> Any:
    if default is None or value is None:  # no type to check; a range still applies (frame_interval)
        _check_range(key, value, source)
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: '{key}' must be true or false, got {value!r}")
    elif isinstance(default, float) and isinstance(value, (int, str)) and not isinstance(value, bool):
        value = _as_float(key, value, source)  # YAML 1.1 reads `5e-6` as a string
    elif isinstance(default, (int, float, str, list, dict)) and not isinstance(value, type(default)):
        raise ConfigError(f"{source}: '{key}' must be {type(default).__name__}, got {type(value).__name__} {value!r}")
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{source}: '{key}' must be one of {list(CHOICES[key])}, got {value!r}")
    _check_range(key, value, source)
    return value


def _check_range(key: str, value: Any, source: str) -> None:
    if key == "solver.betas" and not (len(value) == 2 and all(isinstance(b, (int, float)) and 0 <= b < 1
                                                               for b in value)):
        raise ConfigError(f"{source}: 'solver.betas' must be two numbers in [0, 1), got {value!r}")
    if key not in RANGES or value is None:
        return
    low, high = RANGES[key]
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise ConfigError(f"{source}: '{key}' must be {bounds}, got {value!r}")


def _as_float(key: str, value: int | str, source: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{source}: '{key}' must be a number, got {value!r}") from None


def deep_merge(base: dict, updates: dict) -> dict:
    """`base` with `updates` merged in, nested dicts key by key."""
    merged = dict(base)
    for key, value in updates.items():
        both_dicts = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = deep_merge(merged[key], value) if both_dicts else value
    return merged


def _get(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def _set(tree: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        tree = tree.setdefault(part, {})
    tree[leaf] = value


def merge(config: dict, updates: dict, source: str) -> dict:
    """`config` with `updates` applied; every key of `updates` must be a known key of the right type."""
    merged = copy.deepcopy(config)
    for dotted, value in _flatten(updates).items():
        if dotted not in VALID_KEYS:
            open_parent = next((p for p in OPEN_SECTIONS if dotted.startswith(p + ".")), None)
            if open_parent is None:
                raise ConfigError(f"{source}: unknown key '{dotted}'{_nearest(dotted)}")
        elif dotted in OPEN_SECTIONS:
            value = deep_merge(_get(merged, dotted), value)
        else:
            value = _check_type(dotted, value, VALID_KEYS[dotted], source)
        _set(merged, dotted, value)
    return merged


def parse_override(text: str) -> dict:
    """`a.b=value` (value parsed as YAML: numbers, booleans, lists) -> nested dict."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set solver.lr=1e-5")
    key, raw = text.split("=", 1)
    tree: dict = {}
    _set(tree, key.strip(), _yaml(raw, f"--set {text}"))
    return tree


def _yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise ConfigError(f"{source}: not valid YAML{line}: {getattr(error, 'problem', None) or error}") from None


def load_config(path: str | Path | None, overrides: list[str] = ()) -> dict:
    """Defaults, then the YAML file, then each `--set key=value`, validated at every step."""
    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path} not found")
        loaded = _yaml(path.read_text(), str(path)) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        config = merge(config, loaded, str(path))
    for text in overrides:
        config = merge(config, parse_override(text), f"--set {text}")
    return config
