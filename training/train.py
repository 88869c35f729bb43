"""Training: DALI clips -> engine forward -> KL loss -> backward -> step, then eval and checkpoints per epoch."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist

from actionclip import actionclip_loss, draw_mix, is_distributed, mix_clips, param_groups
from pipelines.config import epoch_seed
from training import checkpoint, components, protocols, watchdog
from training.config import RunConfig
from training.ema import WeightEma
from training.engine import Dist, build_engine, deepspeed_config
from training.evaluate import SCORES, evaluate
from training.logs import RunLog, console, progress_bar, require_monitors, results_table, write_experiment
from training.metrics import Throughput


def train(config: RunConfig, dist: Dist, *, resume: str | None = None, max_steps: int | None = None,
          trust_checkpoint: bool = False, overwrite: bool = False) -> dict:
    """Train as configured; returns a summary (epochs, steps, best top-1, clips/s and data-wait % over the
    whole run and `steady` without each epoch's first logging window, paths).

    `trust_checkpoint` lets `resume` read DeepSpeed files holding arbitrary pickled objects; `overwrite`
    lets a new run replace the checkpoints of an earlier one in the same experiment folder."""
    exp_dir = Path(config.logging.exp_dir)
    require_monitors(config.logging.wandb)
    if not (resume or overwrite):
        checkpoint.refuse_earlier_run(exp_dir)
    if dist.is_main:
        write_experiment(exp_dir, config.as_dict())
    torch.manual_seed(config.seed)
    train_shards = components.require_shards(config.data.train_shards, "data.train_shards")
    classes = components.class_names(config.data.labels, train_shards, "data.labels")
    # Few-shot and base-to-novel runs read a subset; `classes` become the base classes the prompts name.
    train_set, val_set, classes = protocols.training_sets(config, classes, dist.is_main)
    model = components.model_from_config(config)
    config = components.resolved_config(config, model)  # checkpoints record the activation the weights chose
    train_loader = components.loader_from_config(config, model, dist, "train", train_set)
    val_loader = None if val_set is None else components.loader_from_config(config, model, dist, "val", val_set)
    prompts = components.prompt_table(config, classes, dist.device)
    solver = config.solver
    groups = param_groups(model, solver.lr, solver.weight_decay, solver.ratio, solver.f_ratio)
    ema = WeightEma(model, solver.ema, dist.device) if solver.ema else None  # copied before the engine takes it
    engine, scheduler = build_engine(model, groups, config, deepspeed_config(config, len(train_loader), exp_dir))
    if ema is not None:
        ema.start_from(engine.module)
    checkpoint.guard_checkpoint_reads(engine, trust_checkpoint)

    state = {"epoch": 0, "step": 0, "best_top1": None, "best_epoch": None}
    if ema is not None:
        state.update(best_ema_top1=None, best_ema_epoch=None)
    if resume:
        state = _resume(engine, exp_dir, resume, state, dist, ema)
    log = RunLog(exp_dir, engine.monitor, dist.is_main)
    # metrics.jsonl keeps every run in the folder: this row says where one starts and whether it continues one.
    log.record("start", state["step"], {}, labels={"epoch": state["epoch"] + 1, "resumed": bool(resume)})
    throughput = Throughput(dist.world_size)
    with watchdog.watching(exp_dir, dist.rank, dist.world_size, config.deepspeed.timeout_minutes), \
            progress_bar(dist.is_main) as progress:
        for epoch in range(state["epoch"], solver.epochs):
            steps_left = None if max_steps is None else max_steps - state["step"]
            if steps_left is not None and steps_left <= 0:
                break
            steps = train_epoch(engine, train_loader, prompts, epoch, config, dist, log, progress, state, throughput,
                                steps_left, ema)
            if steps < len(train_loader):
                break  # stopped by max_steps inside the epoch: nothing to evaluate or checkpoint
            metrics = ema_metrics = None
            is_last = epoch + 1 == solver.epochs
            if val_loader is not None and ((epoch + 1) % config.logging.eval_freq == 0 or is_last):
                metrics = _validate(engine.module, "val", val_loader, prompts, progress, log, state, epoch, dist)
                if ema is not None:
                    ema_metrics = _validate(ema.model, "val_ema", val_loader, prompts, progress, log, state, epoch,
                                            dist)
            state["epoch"] = epoch + 1
            _save(engine, exp_dir, config, classes, state, metrics, dist, ema, ema_metrics)
    summary = {
        "epochs": state["epoch"], "steps": state["step"], "best_top1": state["best_top1"],
        "best_epoch": state["best_epoch"], **throughput.summary(), "exp_dir": str(exp_dir),
        "checkpoint": str(exp_dir / "checkpoints" / "best.pt"),
        "last_checkpoint": str(exp_dir / "checkpoints" / "last.pt"),
    }
    if ema is not None:
        summary.update(best_ema_top1=state["best_ema_top1"], best_ema_epoch=state["best_ema_epoch"],
                       ema_checkpoint=str(exp_dir / "checkpoints" / "best_ema.pt"))
    return summary


def _validate(model, kind: str, loader, prompts, progress, log: RunLog, state: dict, epoch: int, dist: Dist) -> dict:
    """Score `model` on the val split and log the scores as a `kind` row ("val", or "val_ema" for the EMA)."""
    metrics = evaluate(model, loader, prompts, progress)
    log.record(kind, state["step"], {k: metrics[k] for k in SCORES if k in metrics}, labels={"epoch": epoch + 1})
    if dist.is_main:
        console.print(results_table(f"epoch {epoch + 1} {kind}", metrics))
    return metrics


def train_epoch(engine, loader, prompts, epoch: int, config: RunConfig, dist: Dist, log: RunLog, progress, state: dict,
                throughput: Throughput, max_steps: int | None, ema: WeightEma | None = None) -> int:
    """One epoch (or `max_steps` of it); returns the steps run. Logs every `print_freq` steps and at the end.
    Mixes clips and targets when solver.mixup / cutmix are on; moves `ema` after every applied optimiser step."""
    solver = config.solver
    loader.set_epoch(epoch)
    log.record("data", state["step"], {}, labels={"epoch": epoch + 1,
                                                  "rank_sample_ranges": _gather(loader.plan.sample_range)})
    # One random prompt template per clip, from a generator seeded like the data so a resumed epoch repeats.
    templates = torch.Generator(device=prompts.tokens.device).manual_seed(epoch_seed(config.seed, epoch, dist.rank))
    # Drop path and dropout draw from torch's global generator: seeded like the data, so a resumed epoch repeats them.
    torch.manual_seed(epoch_seed(config.seed, epoch, dist.rank))
    # Mixup / CutMix draws: a stream of their own (the loader's is the epoch seed's root), seeded like the data too.
    mixing = None
    if solver.mixup or solver.cutmix:
        mixing = np.random.default_rng(np.random.SeedSequence(epoch_seed(config.seed, epoch, dist.rank)).spawn(1)[0])
    engine.train()
    num_steps = len(loader) if max_steps is None else min(len(loader), max_steps)
    task = progress.add_task(f"epoch {epoch + 1}/{solver.epochs}", total=num_steps, status="")
    throughput.start_epoch()
    batches = iter(loader)
    for step_in_epoch in range(num_steps):
        watchdog.mark("loading data", state["step"] + 1)
        waiting = time.perf_counter()
        batch = next(batches)
        waited = time.perf_counter() - waiting
        watchdog.mark("forward/backward", state["step"] + 1)
        labels, label_sets = prompted_classes(batch, dist.device, templates)
        video, mix = batch["video"], None
        if mixing is not None:
            mix = draw_mix(video.shape[0], tuple(video.shape[-2:]), mixing, solver.mixup, solver.cutmix,
                           solver.mix_prob)
            video = mix_clips(video, mix)
        video_embedding, text_embedding, logit_scale = engine(video, prompts.sample(labels, templates))
        loss = actionclip_loss(video_embedding, text_embedding, labels, logit_scale, label_sets=label_sets, mix=mix,
                               label_smoothing=solver.label_smoothing)
        engine.backward(loss)
        engine.step()
        if ema is not None and engine.was_step_applied():
            ema.update(engine.module)
        state["step"] += 1
        throughput.step(labels.shape[0], waited)
        progress.advance(task)
        if state["step"] % config.logging.print_freq == 0 or step_in_epoch == num_steps - 1:
            values = {"loss": _global_mean(loss.detach()), "lr": engine.get_lr()[0],
                      **throughput.close_window(state["step"]), "logit_scale": float(logit_scale.detach()),
                      "epoch": epoch + 1}
            log.record("train", state["step"], values)
            progress.update(task, status=f"loss {values['loss']:.4f}  lr {values['lr']:.2e}  "
                                         f"{values['clips_per_s']:.1f} clips/s  wait {values['data_wait_pct']:.0f}%")
    return num_steps


def prompted_classes(batch: dict, device: torch.device,
                     generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(the class each clip's text prompts, the label sets or None). A multi-label clip prompts one of its
    classes, drawn from `generator` (seeded like the data, so a resumed epoch draws the same)."""
    if "label_set" not in batch:
        return batch["label"].to(device), None
    label_sets = batch["label_set"].to(device)
    return torch.multinomial(label_sets.float(), 1, generator=generator).squeeze(1), label_sets


def _global_mean(value: torch.Tensor) -> float:
    """The loss averaged over ranks (each rank's loss is the mean of its own rows)."""
    value = value.float().clone()
    if is_distributed():
        torch_dist.all_reduce(value)
        value /= torch_dist.get_world_size()
    return float(value)


def _gather(value) -> list:
    """`value` from every rank, in rank order."""
    if not is_distributed():
        return [value]
    values = [None] * torch_dist.get_world_size()
    torch_dist.all_gather_object(values, value)
    return values


def _resume(engine, exp_dir: Path, resume: str, state: dict, dist: Dist, ema: WeightEma | None = None) -> dict:
    """Load the checkpoint `resume` names; with `auto` (or a checkpoint folder) the newest intact epoch tag,
    saying which damaged or missing ones it passed over. `ema` takes the checkpoint's EMA, or starts from its
    weights when it was saved without one."""
    folder, tag = checkpoint.resume_tag(exp_dir, resume)
    folder = Path(folder)
    candidates = checkpoint.resume_candidates(folder) if tag is None else [tag]
    if not candidates:
        if dist.is_main:
            console.print(f"resume: no checkpoint in {folder} yet, starting from scratch")
        return state
    problems = []
    for candidate in candidates:
        problem = checkpoint.tag_problem(folder / candidate, dist.world_size)
        if problem is None:
            break
        problems.append(problem)
    else:
        raise components.ConfigError(f"--resume {resume}: {'; '.join(problems)}; resume from another epoch with "
                                     f"--resume {folder}/epochNNNN, or start over with --overwrite")
    if problems and dist.is_main:
        console.print(f"resume: passed over {'; '.join(problems)}; resuming from {candidate}")
    loaded, client_state = engine.load_checkpoint(str(folder), tag=candidate)
    if loaded is None:
        raise components.ConfigError(f"--resume {resume}: DeepSpeed could not load {folder / candidate}")
    if dist.is_main:
        console.print(f"resumed from {loaded} at epoch {client_state['epoch']}, step {client_state['step']}")
    if ema is not None and "ema" in client_state:
        ema.load_state_dict(client_state["ema"])
    elif ema is not None:
        ema.start_from(engine.module)
        if dist.is_main:
            console.print(f"resume: {loaded} holds no EMA (saved without solver.ema); the EMA starts from its weights")
    return {key: client_state.get(key, state[key]) for key in state}  # best_ema_* only in runs with EMA


def _save(engine, exp_dir: Path, config: RunConfig, classes: list[str], state: dict, metrics: dict | None,
          dist: Dist, ema: WeightEma | None = None, ema_metrics: dict | None = None) -> None:
    """DeepSpeed checkpoint for resuming (with the EMA in its client state); fp32 `last.pt`, and `best.pt` when val
    top-1 improved; with EMA the same for its weights as `last_ema.pt` / `best_ema.pt`, scored by its own val."""
    scored = {"": metrics, **({"_ema": ema_metrics} if ema is not None else {})}  # file suffix -> val metrics
    improved = {suffix: _improved(state, suffix, scores) for suffix, scores in scored.items()}
    watchdog.mark("saving a checkpoint", state["step"])
    client_state = {**state, "config": config.as_dict(), **({"ema": ema.state_dict()} if ema is not None else {})}
    checkpoint.save_epoch(engine, exp_dir, client_state)
    weights = {"": checkpoint.fp32_state_dict(engine)}  # every rank: the fp32 master copy is partitioned
    if ema is not None:
        weights["_ema"] = client_state["ema"]["weights"]
    if dist.is_main:
        folder = exp_dir / "checkpoints"
        saved = config.as_dict()
        for suffix, metrics in scored.items():
            scores = {k: metrics[k] for k in SCORES if k in metrics} if metrics else {}
            checkpoint.export_consolidated(folder / f"last{suffix}.pt", weights[suffix], saved, classes,
                                           state["epoch"], scores)
            if improved[suffix] or (metrics is None and state[f"best{suffix}_top1"] is None):
                checkpoint.export_consolidated(folder / f"best{suffix}.pt", weights[suffix], saved, classes,
                                               state["epoch"], scores)


def _improved(state: dict, suffix: str, metrics: dict | None) -> bool:
    """Whether `metrics` beat the best val top-1 so far of the weights `suffix` names ("" or "_ema"); if so
    they become it, with this epoch."""
    best = state[f"best{suffix}_top1"]
    improved = metrics is not None and (best is None or metrics["top1"] > best)
    if improved:
        state[f"best{suffix}_top1"], state[f"best{suffix}_epoch"] = metrics["top1"], state["epoch"]
    return improved
