"""Checkpoints: DeepSpeed's own every epoch (resumable), plus `last.pt` / `best.pt` as one fp32 file.

The consolidated file is `{"format", "config", "classes", "epoch", "metrics", "state_dict"}` and loads with
`torch.load(weights_only=True)`. Original ActionCLIP checkpoints load through the same entry point.
DeepSpeed reads its own files with `weights_only=False`, which runs any code pickled into them; the
engine's checkpoint reads are routed through `guard_checkpoint_reads`, which allows exactly the
DeepSpeed classes its files hold, and the fp32 weights are taken from the live engine, not re-read.
"""
from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from actionclip import ActionCLIP
from actionclip.weights import WeightsSource, read_weights_file
from training.config import ConfigError

FORMAT = "actionclip-trainer/1"


def deepspeed_dir(exp_dir: Path) -> Path:
    return exp_dir / "checkpoints" / "deepspeed"


def save_epoch(engine, exp_dir: Path, client_state: dict) -> None:
    """A DeepSpeed checkpoint (model, optimiser, scheduler, client state) tagged by epoch; every rank calls."""
    tag = f"epoch{client_state['epoch']:04d}"
    engine.save_checkpoint(str(deepspeed_dir(exp_dir)), tag=tag, client_state=client_state)


def fp32_weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Full-precision state dict of an engine's module, on its device: ZeRO's fp32 master copy of each
    parameter where it keeps one, else the module's own values (frozen parameters, buffers) as float32.

    A collective with ZeRO (the master copy is partitioned over the ranks): every rank calls it.
    """
    from deepspeed.utils import safe_get_full_fp32_param

    weights = {}
    for name, value in module.state_dict(keep_vars=True).items():
        master = safe_get_full_fp32_param(value) if isinstance(value, torch.nn.Parameter) else None
        value = (value if master is None else master).detach()
        weights[name] = value.float() if value.is_floating_point() else value
    return weights


def fp32_state_dict(engine) -> dict[str, torch.Tensor]:
    """`fp32_weights` of the live engine on the CPU (what last.pt / best.pt hold); every rank calls it."""
    return {name: value.cpu() for name, value in fp32_weights(engine.module).items()}


def deepspeed_file_globals() -> list:
    """The classes DeepSpeed pickles into its checkpoint files besides tensors and builtins (ZeRO optimiser
    state: partition addresses, the stage enum, loss scalers). Nothing else is allowed to load."""
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [fragment_address, ZeroStageEnum, LossScaler, DynamicLossScaler]


def guard_checkpoint_reads(engine, trust: bool) -> None:
    """Make the engine read its checkpoint files with `weights_only=True` and DeepSpeed's own classes only.

    A file that needs anything else is refused with a ConfigError naming the file and the global;
    `trust` (launch.py --trust-checkpoint) restores DeepSpeed's unrestricted reads for files you made.
    """
    if trust:
        return
    allowed = deepspeed_file_globals()

    def load(path, map_location=None):
        try:
            with torch.serialization.safe_globals(allowed):
                return torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as error:
            refused = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            names = [name for name in refused if name not in {f"{g.__module__}.{g.__qualname__}" for g in allowed}]
            raise ConfigError(f"{path} holds pickled objects this trainer does not load ({', '.join(names) or error}): "
                              "it may run code. Resume only from checkpoints you made; for an older file you "
                              "trust, pass --trust-checkpoint") from error
        except (RuntimeError, EOFError, OSError) as error:  # truncated or overwritten: torch's zip reader fails
            raise ConfigError(f"{path} is damaged ({str(error).splitlines()[0]}): resume from an earlier epoch with "
                              f"--resume {Path(path).parent.parent}/epochNNNN") from error

    engine.checkpoint_engine.load = load


def export_consolidated(path: Path, state_dict: dict, config: dict, classes: list[str], epoch: int,
                        metrics: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save({"format": FORMAT, "config": config, "classes": list(classes), "epoch": epoch, "metrics": metrics,
                "state_dict": state_dict}, temporary)
    temporary.replace(path)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file, read once: this trainer's consolidated export (`config`, `classes` and the state
    dict) or an original ActionCLIP checkpoint (`config` and `classes` None; build_model imports it)."""

    path: str
    weights: WeightsSource

    @property
    def is_own(self) -> bool:
        return self.weights.state is not None and self.weights.state.get("format") == FORMAT

    @property
    def config(self) -> dict | None:
        return self.weights.state["config"] if self.is_own else None

    @property
    def classes(self) -> list[str] | None:
        return self.weights.state["classes"] if self.is_own else None


def open_checkpoint(path: str | Path, *, other_weights: bool = False) -> Checkpoint:
    """`path` read without executing pickled code. A file of neither checkpoint format is an error unless
    `other_weights` (network.pretrained: also open_clip/OpenAI weight files, passed on to build_model)."""
    if not Path(path).is_file():
        raise ConfigError(f"checkpoint {path} not found; train first or pass --checkpoint PATH")
    try:
        weights = read_weights_file(path)
    except ValueError as error:  # pickled objects or not a torch file: the message says which
        raise ConfigError(str(error)) from error
    checkpoint = Checkpoint(str(path), weights)
    if not (other_weights or checkpoint.is_own or weights.kind == "actionclip"):
        raise ConfigError(f"{path}: neither a '{FORMAT}' file (last.pt / best.pt) nor an original ActionCLIP "
                          "checkpoint (model_state_dict + fusion_model_state_dict)")
    return checkpoint


def load_own_weights(model: ActionCLIP, checkpoint: Checkpoint) -> None:
    """The state dict of one of this trainer's exports into `model`, which must have its network."""
    missing, unexpected = model.load_state_dict(checkpoint.weights.state["state_dict"], strict=False)
    if missing or unexpected:
        raise ConfigError(f"{checkpoint.path} does not fit this model (missing {missing[:5]}, unexpected "
                          f"{unexpected[:5]}): use the checkpoint's own network settings")


def refuse_earlier_run(exp_dir: Path) -> None:
    """A new run would replace best.pt, last.pt and the resumable checkpoints of the one in `exp_dir`."""
    earlier = [path for path in (deepspeed_dir(exp_dir) / "latest", exp_dir / "checkpoints" / "last.pt")
               if path.exists()]
    if earlier:
        raise ConfigError(f"{exp_dir} already holds a run ({earlier[0]}): continue it with --resume auto, set a new "
                          "logging.exp_dir, or pass --overwrite to replace its checkpoints")


def tag_problem(folder: Path, world_size: int) -> str | None:
    """Why the DeepSpeed checkpoint `folder` (one epoch tag) cannot be resumed, or None when it is whole: the
    model states and one optimiser partition per rank, each a complete zip (a write cut short has no
    central directory). DeepSpeed itself would resume without a missing optimiser partition, silently."""
    if not folder.is_dir():
        return f"{folder} does not exist"
    models = sorted(folder.glob("*model_states.pt"))
    partitions = sorted(folder.glob("*optim_states.pt"))
    if not models:
        return f"{folder} holds no model states"
    if partitions and len(partitions) != world_size:
        return f"{folder} holds {len(partitions)} optimiser partitions for {world_size} ranks"
    damaged = next((path for path in models + partitions if not zipfile.is_zipfile(path)), None)
    return None if damaged is None else f"{damaged} is damaged (truncated or overwritten)"


def resume_candidates(folder: Path) -> list[str]:
    """Epoch tags to resume from, newest first, starting at `latest` (a newer folder was still being written)."""
    tags = sorted((path.name for path in folder.glob("epoch[0-9]*") if path.is_dir()), reverse=True)
    latest = (folder / "latest").read_text().strip() if (folder / "latest").is_file() else None
    if latest is None:
        return []
    return [latest] + [tag for tag in tags if tag < latest]


def resume_tag(exp_dir: Path, resume: str) -> tuple[str, str | None]:
    """(DeepSpeed checkpoint folder, tag) for `--resume auto` (latest here, or none) or a tag/folder path."""
    folder = deepspeed_dir(exp_dir)
    if resume == "auto":
        return str(folder), None
    path = Path(resume)
    if path.is_dir() and (path / "latest").exists():
        return str(path), None
    if path.is_dir():
        return str(path.parent), path.name
    raise ConfigError(f"--resume {resume}: not 'auto', a DeepSpeed checkpoint folder or one of its epoch tags")
