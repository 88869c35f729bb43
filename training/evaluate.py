"""Evaluation: class text embeddings once, per-view scores averaged per video, metrics over all ranks.

Multi-label splits (each video a set of classes, e.g. Charades) also get mAP: the average precision of
each class's ranking of the videos, averaged over the classes that occur. There top-1 / top-5 count a hit
when a predicted class is in the video's set, and mean class accuracy averages, over classes, the top-1
hits of the videos holding the class.
"""
from __future__ import annotations

import torch
import torch.distributed as torch_dist

from actionclip import ActionCLIP, PromptTable, encode_prompt_table, is_distributed, score_videos
from training import watchdog

# The scores a run logs and checkpoints carry (mAP for multi-label splits only).
SCORES = ("top1", "top5", "mean_class_accuracy", "mAP")


@torch.no_grad()
def evaluate(model: ActionCLIP, loader, prompts: PromptTable, progress=None) -> dict:
    """Top-1, top-5 and mean class accuracy of `model` on every video of `loader`'s split.

    Each view is scored against all prompt templates (softmax over classes, averaged over templates); views
    of one video (multi-clip / multi-crop test) are averaged; padding slots (`valid` False) are dropped.
    """
    was_training = model.training
    model.eval()
    text = encode_prompt_table(model, prompts)
    num_videos, num_classes = loader.shards.num_samples, prompts.num_classes
    device = text.device
    score_sum = torch.zeros(num_videos, num_classes, device=device)
    view_count = torch.zeros(num_videos, device=device)
    labels = torch.full((num_videos,), -1, dtype=torch.long, device=device)
    label_sets = None
    if loader.shards.label_sets is not None:
        label_sets = torch.zeros(num_videos, num_classes, dtype=torch.uint8, device=device)
    task = progress.add_task("eval", total=len(loader), status="") if progress else None
    for number, batch in enumerate(loader):
        watchdog.mark(f"evaluating, batch {number + 1} of {len(loader)}")
        keep = batch["valid"].to(device)
        ids = batch["video_id"].to(device)[keep]
        probabilities = score_videos(model.encode_video(batch["video"], normalize=True), text)[keep]
        score_sum.index_add_(0, ids, probabilities)
        view_count.index_add_(0, ids, torch.ones_like(ids, dtype=view_count.dtype))
        labels[ids] = batch["label"].to(device)[keep]
        if label_sets is not None:
            label_sets[ids] = batch["label_set"].to(device)[keep].to(torch.uint8)
        if progress:
            progress.advance(task)
    if progress:
        progress.remove_task(task)
    if is_distributed():
        watchdog.mark("gathering evaluation scores")
        torch_dist.all_reduce(score_sum)
        torch_dist.all_reduce(view_count)
        torch_dist.all_reduce(labels, op=torch_dist.ReduceOp.MAX)
        if label_sets is not None:
            torch_dist.all_reduce(label_sets, op=torch_dist.ReduceOp.MAX)
    model.train(was_training)
    if (view_count == 0).any():
        raise RuntimeError(f"{int((view_count == 0).sum())} of {num_videos} videos were never scored")
    scores = score_sum / view_count[:, None]
    return accuracy(scores, labels) if label_sets is None else multi_label_accuracy(scores, label_sets.bool())


def accuracy(scores: torch.Tensor, labels: torch.Tensor) -> dict:
    return _metrics(scores, labels[:, None] == torch.arange(scores.shape[1], device=scores.device)[None, :],
                    {"labels": labels.tolist()})


def multi_label_accuracy(scores: torch.Tensor, label_sets: torch.Tensor) -> dict:
    """`accuracy` for label sets (N, C) bool, plus mAP and each occurring class's average precision."""
    per_class = {c: average_precision(scores[:, c], label_sets[:, c]) for c in range(scores.shape[1])
                 if label_sets[:, c].any()}
    return _metrics(scores, label_sets, {
        "mAP": 100.0 * sum(per_class.values()) / len(per_class), "per_class_ap": per_class,
        "label_sets": [row.nonzero().flatten().tolist() for row in label_sets]})


def average_precision(scores: torch.Tensor, positives: torch.Tensor) -> float:
    """Mean over the positives of the precision among the videos ranked at or above each (ties by index)."""
    ranked = positives[scores.argsort(descending=True, stable=True)].float()
    precision = ranked.cumsum(0) / torch.arange(1, len(ranked) + 1, device=ranked.device)
    return float((precision * ranked).sum() / ranked.sum())


def _metrics(scores: torch.Tensor, label_sets: torch.Tensor, extra: dict) -> dict:
    top5 = scores.topk(min(5, scores.shape[1]), dim=1).indices
    hit1 = label_sets.gather(1, top5[:, :1]).squeeze(1)
    hit5 = label_sets.gather(1, top5).any(dim=1)
    per_class = [hit1[label_sets[:, c]].float().mean() for c in range(scores.shape[1]) if label_sets[:, c].any()]
    return {
        "top1": 100.0 * hit1.float().mean().item(),
        "top5": 100.0 * hit5.float().mean().item(),
        "mean_class_accuracy": 100.0 * torch.stack(per_class).mean().item(),
        "videos": int(scores.shape[0]),
        "predictions": top5[:, 0].tolist(),
        **extra,
    }
