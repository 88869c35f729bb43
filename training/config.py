"""Run configuration: a typed tree of sections (pydantic), loaded from YAML and `--set` overrides.

Each component takes its own section: the loader `data` (pipelines.LoaderConfig plus the run's shards
and labels), the model `network`, the optimiser and schedule `solver`, the engine `deepspeed`, the run
log `logging`, evaluation `test`. Section and key names follow the original ActionCLIP configs where
they fit (`num_segments`, `sim_header`, `tsm`, `joint`, `ratio`, `f_ratio`, `lr_warmup_step`,
`clip_gradient`, `eval_freq`, ...). A bad value is a ConfigError naming its source, key and fix.
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, Field, StrictBool, ValidationError, field_validator

from actionclip.fusion import CONV1D_LAYOUTS, SIM_HEADERS
from pipelines.batch import PRECISION_DTYPES
from pipelines.loader_config import LoaderConfig, Section


class ConfigError(ValueError):
    """A config that cannot run; the message names the key and what to do."""


class DataConfig(LoaderConfig):
    dataset: str = "dataset"
    train_shards: Optional[str] = None  # shard folder or manifest built by shard_tools
    val_shards: Optional[str] = None
    labels: Optional[str] = None  # CSV `id,name`; default: the class names in the shard manifest
    # Protocols (training.protocols), drawn with `seed`: K training videos per class (None: all) ...
    shots: Optional[int] = Field(None, ge=1)
    # ... and base-to-novel: train on these classes only ('half': a seeded half, a CSV with a `name` column, or a
    # list of names); the others are the novel classes `launch.py base-to-novel` scores.
    base_classes: Optional[str | list[str]] = None


class NetworkConfig(Section):
    arch: str = "ViT-B-32"  # open_clip model name or model-config JSON
    pretrained: Optional[str] = "openai"  # open_clip tag, weights file, own best.pt / last.pt, or none
    sim_header: Literal[SIM_HEADERS] = "Transf"
    conv1d_layout: Literal[CONV1D_LAYOUTS] = "transpose"  # Conv_1D: 'original' as original checkpoints (they select it)
    quick_gelu: Optional[StrictBool] = None  # None: as the weights were trained (OpenAI: QuickGELU), else the arch's
    tsm: StrictBool = False
    # With tsm: 1/shift_div of each shifted tensor's channels moves back a frame and 1/shift_div forward (TSM's 8;
    # a narrow tower from scratch, as the demo's, moves too few channels at 8 to learn motion reliably).
    shift_div: int = Field(8, ge=2)
    zero_init_residual: StrictBool = True  # RN towers from scratch: False starts the residual branches open
    joint: StrictBool = False
    fix_text: StrictBool = False
    fix_img: StrictBool = False
    grad_checkpointing: StrictBool = False
    # Recipe options (issue #15), both towers, training mode only: stochastic depth rising linearly over the blocks
    # to this rate (the original's drop_out), dropout on the token embeddings (its emb_dropout); 0: off.
    drop_path: float = Field(0.0, ge=0, lt=1)
    emb_dropout: float = Field(0.0, ge=0, lt=1)


class SolverConfig(Section):
    epochs: int = Field(50, ge=1)
    lr: float = Field(5.0e-6, ge=0)
    lr_warmup_step: int = Field(5, ge=0)  # warm-up epochs
    ratio: float = Field(1.0, ge=0)  # visual lr = lr * ratio
    f_ratio: float = Field(10.0, ge=0)  # fusion head lr = lr * f_ratio
    weight_decay: float = Field(0.2, ge=0)
    betas: list[float] = Field(default_factory=lambda: [0.9, 0.98])
    eps: float = Field(1.0e-8, ge=0)
    clip_gradient: float = Field(20.0, ge=0)
    grad_accumulation_steps: int = Field(1, ge=1)
    # Recipe options (issue #15), 0: off. Mixup / CutMix Beta(α, α) on whole clips (actionclip.mixing), each clip
    # mixed with probability mix_prob; label smoothing of the KL targets; EMA decay of the weights (e.g. 0.9998).
    mixup: float = Field(0.0, ge=0)
    cutmix: float = Field(0.0, ge=0)
    mix_prob: float = Field(1.0, ge=0, le=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    ema: float = Field(0.0, ge=0, lt=1)

    @field_validator("betas")
    @classmethod
    def _two_betas(cls, betas: list[float]) -> list[float]:
        if len(betas) != 2 or not all(0 <= beta < 1 for beta in betas):
            raise ValueError("must be two numbers in [0, 1)")
        return betas


class DeepSpeedConfig(Section):
    zero_stage: int = Field(1, ge=0, le=3)
    precision: Literal[tuple(PRECISION_DTYPES)] = "bf16"
    # A rank that spends this long in one step (waiting for a silent rank) names that rank and ends the run.
    timeout_minutes: float = Field(10.0, ge=0.05)
    config: dict[str, Any] = Field(default_factory=dict)  # merged last into the generated DeepSpeed JSON


class LoggingConfig(Section):
    exp_dir: str = "runs/experiment"
    print_freq: int = Field(10, ge=1)
    eval_freq: int = Field(1, ge=1)
    tensorboard: StrictBool = True
    csv: StrictBool = True
    wandb: StrictBool = False
    wandb_project: str = "actionclip"


class EvaluationConfig(Section):
    shards: Optional[str | list[str]] = None  # default: data.val_shards; zero-shot: a list scores each (splits 1-3)
    labels: Optional[str] = None  # default: data.labels
    num_clips: int = Field(1, ge=1)
    num_crops: Literal[1, 3] = 1
    batch_size: Optional[int] = Field(None, ge=1)  # default: data.batch_size
    checkpoint: Optional[str] = None  # default: <exp_dir>/checkpoints/best.pt
    # zero-shot: score each shard set this many times on a seeded `class_fraction` of its classes (None: all once)
    class_draws: Optional[int] = Field(None, ge=1)
    class_fraction: float = 0.5

    @field_validator("class_fraction")
    @classmethod
    def _a_fraction(cls, fraction: float) -> float:
        if not 0 < fraction <= 1:
            raise ValueError("must be in (0, 1]")
        return fraction


class RunConfig(Section):
    seed: int = 1024
    data: DataConfig = Field(default_factory=DataConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    solver: SolverConfig = Field(default_factory=SolverConfig)
    deepspeed: DeepSpeedConfig = Field(default_factory=DeepSpeedConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    test: EvaluationConfig = Field(default_factory=EvaluationConfig)

    def as_dict(self) -> dict:
        """Plain YAML/JSON values under the config-file keys (what config.yaml and checkpoints store)."""
        return self.model_dump(mode="json")


def _keys(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Every settable dotted key (config-file spelling) -> its pydantic FieldInfo."""
    keys = {}
    for name, info in model.model_fields.items():
        dotted = f"{prefix}{info.alias or name}"
        nested = info.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel):
            keys.update(_keys(nested, f"{dotted}."))
        else:
            keys[dotted] = info
    return keys


KEYS = _keys(RunConfig)  # `deepspeed.config` is one key: a free-form mapping of DeepSpeed fields


def _nearest(key: str) -> str:
    match = difflib.get_close_matches(key, list(KEYS), n=1, cutoff=0.5)
    leaf = difflib.get_close_matches(key.rsplit(".", 1)[-1], [k.rsplit(".", 1)[-1] for k in KEYS], n=1)
    if not match and leaf:
        match = [k for k in KEYS if k.endswith("." + leaf[0]) or k == leaf[0]]
    return f"; did you mean '{match[0]}'?" if match else ""


def _bounds(key: str) -> str:
    low = high = below = None
    for bound in KEYS[key].metadata if key in KEYS else ():  # annotated_types.Ge / Le / Lt constraints
        low, high, below = getattr(bound, "ge", low), getattr(bound, "le", high), getattr(bound, "lt", below)
    if below is not None:
        return f"in [{low}, {below})"
    return f">= {low}" if high is None else f"<= {high}" if low is None else f"between {low} and {high}"


TYPE_WORDS = {"int": "int", "float": "a number", "bool": "true or false", "string": "str", "list": "a list",
              "tuple": "a list", "dict": "a mapping", "model": "a mapping", "literal": "one of"}


def _message(error: dict) -> str:
    """One pydantic error as `'key' must be ..., got value` (with 'did you mean' for unknown keys)."""
    key = ".".join(str(part) for part in error["loc"])
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return f"unknown key '{key}'{_nearest(key)}"
    if kind in ("greater_than_equal", "less_than_equal", "less_than"):
        return f"'{key}' must be {_bounds(key)}, got {value!r}"
    if kind == "literal_error":
        return f"'{key}' must be one of {error['ctx']['expected']}, got {value!r}"
    if kind == "value_error":
        return f"'{key}' {error['msg'].removeprefix('Value error, ')}, got {value!r}"
    word = TYPE_WORDS.get(kind.split("_")[0])
    if word is not None:
        return f"'{key}' must be {word}, got {type(value).__name__} {value!r}"
    return f"'{key}': {error['msg'].lower()}, got {value!r}"


def _union_message(errors: list[dict]) -> str | None:
    """`'key' must be str or list[str], got ...` when the first error is about one of the types a key takes
    (pydantic reports each member of a union under its own name, e.g. `test.shards.str`); else None."""
    loc = errors[0]["loc"]
    depth = next((depth for depth in range(len(loc) - 1, 0, -1) if ".".join(map(str, loc[:depth])) in KEYS), None)
    if depth is None or not isinstance(loc[depth], str):
        return None
    members = dict.fromkeys(error["loc"][depth] for error in errors if error["loc"][:depth] == loc[:depth])
    value = errors[0].get("input")
    return f"'{'.'.join(map(str, loc[:depth]))}' must be {' or '.join(members)}, got {type(value).__name__} {value!r}"


def validate(tree: dict, source: str) -> RunConfig:
    """`tree` (config-file keys) as a RunConfig; the first problem is a ConfigError that names `source`."""
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as error:
        errors = error.errors()
        raise ConfigError(f"{source}: {_union_message(errors) or _message(errors[0])}") from None


def deep_merge(base: dict, updates: dict) -> dict:
    """`base` with `updates` merged in, nested dicts key by key."""
    merged = dict(base)
    for key, value in updates.items():
        both_dicts = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = deep_merge(merged[key], value) if both_dicts else value
    return merged


def nested(dotted: str, value: Any) -> dict:
    """`a.b.c`, v -> {"a": {"b": {"c": v}}}."""
    for part in reversed(dotted.split(".")):
        value = {part: value}
    return value


def updated(config: RunConfig, updates: dict, source: str) -> RunConfig:
    """`config` with `updates` (a nested dict, config-file keys) merged in and checked again."""
    return validate(deep_merge(config.as_dict(), updates), source)


def with_values(config: RunConfig, values: dict[str, Any], source: str) -> RunConfig:
    """`config` with each dotted key of `values` set, e.g. {"data.batch_size": 8}."""
    updates: dict = {}
    for dotted, value in values.items():
        updates = deep_merge(updates, nested(dotted, value))
    return updated(config, updates, source)


def parse_override(text: str) -> dict:
    """`a.b=value` (value parsed as YAML: numbers, booleans, lists) -> nested dict."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set solver.lr=1e-5")
    key, raw = text.split("=", 1)
    return nested(key.strip(), _yaml(raw, f"--set {text}"))


def _yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        raise ConfigError(f"{source}: not valid YAML{line}: {getattr(error, 'problem', None) or error}") from None


def load_config(path: str | Path | None, overrides: list[str] = (), base: RunConfig | None = None) -> RunConfig:
    """The defaults (or `base`), then the YAML file, then each `--set key=value`, checked at every step."""
    config = base or RunConfig()
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file {path} not found")
        loaded = _yaml(path.read_text(), str(path)) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        config = updated(config, loaded, str(path))
    for text in overrides:
        config = updated(config, parse_override(text), f"--set {text}")
    return config
