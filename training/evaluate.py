"""Evaluation: class text embeddings once, per-view scores averaged per video, metrics over all ranks."""
from __future__ import annotations

import torch
import torch.distributed as torch_dist

from actionclip import ActionCLIP, PromptTable, encode_prompt_table, is_distributed, score_videos
from training import watchdog


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
    task = progress.add_task("eval", total=len(loader), status="") if progress else None
    for number, batch in enumerate(loader):
        watchdog.mark(f"evaluating, batch {number + 1} of {len(loader)}")
        keep = batch["valid"].to(device)
        ids = batch["video_id"].to(device)[keep]
        probabilities = score_videos(model.encode_video(batch["video"], normalize=True), text)[keep]
        score_sum.index_add_(0, ids, probabilities)
        view_count.index_add_(0, ids, torch.ones_like(ids, dtype=view_count.dtype))
        labels[ids] = batch["label"].to(device)[keep]
        if progress:
            progress.advance(task)
    if progress:
        progress.remove_task(task)
    if is_distributed():
        watchdog.mark("gathering evaluation scores")
        torch_dist.all_reduce(score_sum)
        torch_dist.all_reduce(view_count)
        torch_dist.all_reduce(labels, op=torch_dist.ReduceOp.MAX)
    model.train(was_training)
    if (view_count == 0).any():
        raise RuntimeError(f"{int((view_count == 0).sum())} of {num_videos} videos were never scored")
    return accuracy(score_sum / view_count[:, None], labels)


def accuracy(scores: torch.Tensor, labels: torch.Tensor) -> dict:
    top5 = scores.topk(min(5, scores.shape[1]), dim=1).indices
    hit1 = top5[:, 0] == labels
    hit5 = (top5 == labels[:, None]).any(dim=1)
    per_class = [hit1[labels == c].float().mean() for c in labels.unique()]
    return {
        "top1": 100.0 * hit1.float().mean().item(),
        "top5": 100.0 * hit5.float().mean().item(),
        "mean_class_accuracy": 100.0 * torch.stack(per_class).mean().item(),
        "videos": int(labels.numel()),
        "predictions": top5[:, 0].tolist(),
        "labels": labels.tolist(),
    }
