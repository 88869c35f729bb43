"""`convert-config`: an original ActionCLIP YAML (github.com/sallymmx/ActionCLIP configs/) as this trainer's run
config, with what became of every original key: the key it maps to, or why it has none.

The notes on keys the original code never reads come from its train.py / test.py / utils/solver.py: it
clips no gradients, has one loss, always takes one frame per segment, and reads `momentum` for SGD and
`lr_decay_*` for its `multistep` schedule only.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml
from rich.table import Table

from actionclip.weights import resolve_model_name
from training.config import ConfigError, deep_merge, load_config, nested, validate
from training.export import check_outputs
from training.logs import console

MAPPED, NO_EFFECT, TO_DO, DIFFERS = "mapped", "no effect", "to do", "differs"


@dataclass(frozen=True)
class Outcome:
    """What one original key became: this trainer's keys it sets, how that compares, and why."""

    status: str  # MAPPED, NO_EFFECT (nothing lost), TO_DO (an action of yours), DIFFERS (no equivalent)
    note: str = ""
    sets: dict[str, Any] = field(default_factory=dict)  # dotted keys of this trainer -> value


@dataclass(frozen=True)
class Row:
    key: str
    value: Any
    outcome: Outcome


@dataclass(frozen=True)
class Conversion:
    tree: dict  # this trainer's config keys the original set, in RunConfig order
    rows: list[Row]


class Original:
    """The original YAML as dotted leaf keys (`data.randaug.N`), for rules that look at other keys."""

    def __init__(self, tree: dict, source: str) -> None:
        self.values = dict(_leaves(tree))
        self.source = source

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    @property
    def evaluates(self) -> bool:
        """An evaluation config (the original's test.py, or solver.evaluate): no training list."""
        return bool(self.get("solver.evaluate")) or not self.get("data.train_list")

    @functools.cached_property
    def arch(self) -> str | None:
        """network.arch in open_clip's spelling."""
        arch = self.get("network.arch")
        try:
            return None if arch is None else resolve_model_name(str(arch))
        except ValueError as error:
            raise ConfigError(f"{self.source}: 'network.arch': {error}") from error


def _leaves(tree: dict, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


Rule = Callable[[Any, Original], Outcome]


def same(target: str, note: str = "") -> Rule:
    return lambda value, original: Outcome(MAPPED, note, {target: value})


def unread(note: str) -> Rule:
    return lambda value, original: Outcome(NO_EFFECT, note)


def default_only(expected: Any, same_note: str, differs_note: str) -> Rule:
    """A key whose original default is this trainer's fixed behaviour; another value has no equivalent."""
    return lambda value, original: (Outcome(NO_EFFECT, same_note) if value == expected or value is None
                                    else Outcome(DIFFERS, differs_note))


def _pretrain(value: Any, original: Original) -> Outcome:
    if not value:
        return Outcome(NO_EFFECT, "empty: network.init decides the starting weights")
    if original.get("resume"):
        return Outcome(NO_EFFECT, "resume is set, whose weights the original loads after these")
    if original.evaluates:
        return Outcome(MAPPED, "the original ActionCLIP checkpoint `launch.py test` scores", {"test.checkpoint": value})
    return Outcome(MAPPED, "an original ActionCLIP checkpoint: its CLIP and fusion weights start the run",
                   {"network.pretrained": value})


def _resume(value: Any, original: Original) -> Outcome:
    if not value:
        return Outcome(NO_EFFECT, "empty: a new run")
    return Outcome(DIFFERS, "weights only: the original's optimiser state and epoch are not restored (--resume "
                            "continues this trainer's own DeepSpeed checkpoints)", {"network.pretrained": value})


def _batch_size(value: Any, original: Original) -> Outcome:
    gpus = original.get("data.gpus")
    if isinstance(gpus, int) and gpus > 1 and isinstance(value, int) and value % gpus == 0:
        return Outcome(MAPPED, f"per rank here: the original's {value} is DataParallel's total over data.gpus "
                               f"{gpus} GPUs", {"data.batch_size": value // gpus})
    return Outcome(MAPPED, "per rank here, the original's is the total over all GPUs (DataParallel): divide it by "
                           "your number of GPUs", {"data.batch_size": value})


def _frame_list(target: str, split: str) -> Rule:
    """train_list / val_list: frame folders, which become shards of `split`, the manifest `target` names."""
    def rule(value: Any, original: Original) -> Outcome:
        if not value:
            return Outcome(NO_EFFECT, "empty")
        name = original.get("data.dataset") or "dataset"
        frames = " ".join(f"--{flag} {original.get(key)!r}" for flag, key in (
            ("image-tmpl", "data.image_tmpl"), ("index-bias", "data.index_bias")) if original.get(key) is not None)
        labels = f" --labels {original.get('data.label_list')}" if original.get("data.label_list") else ""
        out = f"shards/{name}"
        return Outcome(TO_DO, f"a frame-list file: build its shards first, `shard_tools build-shards --format frames "
                              f"--annotations {split}={value} --root <frames folder> {frames}{labels} --name {name} "
                              f"--out {out}`, whose manifest {target} names",
                       {target: f"{out}/{name}-{split}.manifest.json"})
    return rule


def _arch(value: Any, original: Original) -> Outcome:
    name = original.arch
    spelling = "" if name == value else f"open_clip's spelling of {value}; "
    return Outcome(MAPPED, f"{spelling}QuickGELU, as the original's CLIP code always runs it",
                   {"network.arch": name, "network.quick_gelu": True})


def _init(value: Any, original: Original) -> Outcome:
    if original.get("resume") or original.get("pretrain"):
        return Outcome(NO_EFFECT, "pretrain / resume names the weights")
    if value:
        return Outcome(MAPPED, "OpenAI's CLIP weights (open_clip tag)", {"network.pretrained": "openai"})
    return Outcome(MAPPED, "random init", {"network.pretrained": "none"})


def _run_type(value: Any, original: Original) -> Outcome:
    if not value:
        return Outcome(NO_EFFECT, "empty")
    parts = [str(value), original.arch, original.get("data.dataset")]
    folder = "/".join(str(part) for part in ["exp", *parts] if part)
    return Outcome(MAPPED, "the original's working folder exp/<type>/<arch>/<dataset> and wandb project (wandb "
                           "stays off unless logging.wandb: true)",
                   {"logging.exp_dir": folder, "logging.wandb_project": str(value)})


def _sim_header(value: Any, original: Original) -> Outcome:
    if value == "Conv_1D":
        return Outcome(MAPPED, "with the original's Conv_1D input layout", {"network.sim_header": value,
                                                                            "network.conv1d_layout": "original"})
    return Outcome(MAPPED, "", {"network.sim_header": value})


def _schedule_only(value: Any, original: Original) -> Outcome:
    if original.get("solver.type", "cosine") == "cosine":
        return Outcome(NO_EFFECT, "only for solver.type multistep; the original's cosine schedule ignores it")
    return Outcome(DIFFERS, "only for solver.type multistep (step decay), which this trainer does not have: cosine "
                            "only")


def _momentum(value: Any, original: Original) -> Outcome:
    if original.get("solver.optim", "adamw") != "sgd":
        return Outcome(NO_EFFECT, "SGD only; the original's adam / adamw ignore it")
    return Outcome(DIFFERS, "SGD only, which this trainer does not have: AdamW")


def _evaluate(value: Any, original: Original) -> Outcome:
    if not value:
        return Outcome(NO_EFFECT, "false: a training run")
    return Outcome(TO_DO, "an evaluation-only run: run `python launch.py test --config <converted.yaml>`")


def _random_shift(value: Any, original: Original) -> Outcome:
    return Outcome(NO_EFFECT, "training draws a random frame per segment, val/test take segment centres (the "
                              "original's random_shift true / false)")


FRAME_FILES = "shards hold videos: build-shards --format frames reads the frame folders with it"
RULES: dict[str, Rule] = {
    "pretrain": _pretrain,
    "resume": _resume,
    "seed": same("seed"),
    "random_shift": _random_shift,
    "data.dataset": same("data.dataset"),
    "data.modality": default_only("RGB", "RGB, as here", "only RGB: this trainer decodes RGB video"),
    "data.num_segments": same("data.num_segments"),
    "data.seg_length": default_only(1, "the original's train.py never passes it (one frame per segment), as here",
                                    "the original's train.py never passes it: one frame per segment there and here"),
    "data.split": unread("the split id of UCF101 / HMDB51 lists: build-shards --split-id N chooses it"),
    "data.batch_size": _batch_size,
    "data.workers": same("data.workers", "DALI threads and source workers per rank (the original: DataLoader "
                                         "workers)"),
    "data.gpus": unread("the launcher sets the ranks: `deepspeed --num_gpus N launch.py`"),
    "data.index_bias": unread(f"the first frame file's number; {FRAME_FILES} (--index-bias)"),
    "data.input_size": same("data.input_size"),
    "data.randaug.N": same("data.randaug.N"),
    "data.randaug.M": same("data.randaug.M"),
    "data.random_shift": _random_shift,
    "data.num_classes": unread("the class count comes from data.labels and the shards' manifest"),
    "data.image_tmpl": unread(f"the frame files' names; {FRAME_FILES} (--image-tmpl)"),
    "data.train_list": _frame_list("data.train_shards", "train"),
    "data.val_list": _frame_list("data.val_shards", "val"),
    "data.label_list": same("data.labels", "a CSV id,name, as here; the path as the original's config wrote it"),
    "network.arch": _arch,
    "network.init": _init,
    "network.tsm": same("network.tsm"),
    "network.drop_out": same("network.drop_path", "stochastic depth in both towers, rising over the blocks; here drawn "
                             "per clip (timm), where the original's drops token positions of its (L, N, D) tensors "
                             "and also sets the attention dropout"),
    "network.emb_dropout": same("network.emb_dropout", "after both towers' positional embeddings, as the original"),
    "network.type": _run_type,
    "network.sim_header": _sim_header,
    "network.fix_text": same("network.fix_text"),
    "network.fix_img": same("network.fix_img"),
    "network.describe": unread("a free-text description, not read by the original code"),
    "network.joint": same("network.joint"),
    "network.bn_momentum": unread("not read by the original code"),
    "network.consensus_type": unread("not read by the original code"),
    "network.ratio": unread("not read there: the original reads solver.ratio"),
    "network.f_ratio": unread("not read there: the original reads solver.f_ratio"),
    "solver.type": default_only("cosine", "linear warm-up then cosine, as here",
                                "this trainer schedules linear warm-up then cosine only"),
    "solver.epochs": same("solver.epochs"),
    "solver.start_epoch": default_only(0, "a new run starts at epoch 0",
                                       "a run starts at epoch 0, or where --resume auto continues this trainer's "
                                       "own checkpoints"),
    "solver.epoch_offset": unread("not read by the original code"),
    "solver.optim": default_only("adamw", "AdamW with betas 0.9/0.98 and eps 1e-8, as here",
                                 "this trainer optimises with AdamW only"),
    "solver.lr": same("solver.lr"),
    "solver.lr_warmup_step": same("solver.lr_warmup_step", "warm-up epochs, as the original's"),
    "solver.momentum": _momentum,
    "solver.weight_decay": same("solver.weight_decay"),
    "solver.lr_decay_step": _schedule_only,
    "solver.lr_decay_factor": _schedule_only,
    "solver.clip_gradient": same("solver.clip_gradient", "the original reads it but clips nothing; here the "
                                                         "gradient norm is clipped to it (0: no clipping)"),
    "solver.loss_type": unread("not read by the original code: both train with the KL video-text loss"),
    "solver.evaluate": _evaluate,
    "solver.ratio": same("solver.ratio"),
    "solver.f_ratio": same("solver.f_ratio"),
    "logging.print_freq": same("logging.print_freq"),
    "logging.eval_freq": same("logging.eval_freq"),
}


def convert(original: dict, source: str) -> Conversion:
    """The run config (checked as load_config checks it) and one row per key of the original tree."""
    keys = Original(original, source)
    rows, updates = [], {}
    for key, value in keys.values.items():
        rule = RULES.get(key)
        outcome = (rule(value, keys) if rule else
                   Outcome(DIFFERS, "not a key of the original ActionCLIP configs: not converted"))
        rows.append(Row(key, value, outcome))
        for target, converted in outcome.sets.items():
            updates = deep_merge(updates, nested(target, converted))
    resolved = validate(updates, f"{source} (converted)").as_dict()
    written = [key for row in rows for key in row.outcome.sets]
    return Conversion(_only(resolved, set(written)), rows)


def _only(tree: dict, keys: set[str], prefix: str = "") -> dict:
    """`tree` without the keys not in `keys` (dotted), in the tree's order."""
    kept = {}
    for name, value in tree.items():
        dotted = f"{prefix}{name}"
        if dotted in keys:
            kept[name] = value
        elif isinstance(value, dict):
            inner = _only(value, keys, f"{dotted}.")
            if inner:
                kept[name] = inner
    return kept


def read_original(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"original config {path} not found")
    try:
        tree = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: not an ActionCLIP config: the top level must be a mapping of sections "
                          "(data, network, solver, logging)")
    return tree


def convert_file(original_path: str, out: str | None, overwrite: bool) -> Conversion:
    """Convert `original_path`, write the run config to `out` (default ./<name>.converted.yaml), print the table."""
    source = Path(original_path)
    target = Path(out) if out else Path(f"{source.stem}.converted.yaml")
    check_outputs([target], overwrite)
    conversion = convert(read_original(source), str(source))
    to_do = [f"# to do: {row.key}: {row.outcome.note}" for row in conversion.rows if row.outcome.status == TO_DO]
    header = [f"# Converted from {source} by `launch.py convert-config`.", *to_do]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(header) + "\n" + yaml.safe_dump(conversion.tree, sort_keys=False))
    load_config(target)
    console.print(table(conversion, source))
    counts = {status: sum(row.outcome.status == status for row in conversion.rows)
              for status in (MAPPED, NO_EFFECT, TO_DO, DIFFERS)}
    differing = [row.key for row in conversion.rows if row.outcome.status == DIFFERS]
    console.print(f"wrote {target} (checked by load_config): " + ", ".join(f"{n} {s}" for s, n in counts.items())
                  + (f"; without an equivalent: {', '.join(differing)}" if differing else ""))
    return conversion


def table(conversion: Conversion, source: Path) -> Table:
    view = Table(title=f"{source}: every original key")
    for column in ("original key", "value", "status", "this trainer", "why"):
        view.add_column(column, overflow="fold")
    for row in conversion.rows:
        targets = ", ".join(f"{key}: {value}" for key, value in row.outcome.sets.items()) or "-"
        view.add_row(row.key, repr(row.value), row.outcome.status, targets, row.outcome.note)
    return view
