"""ActionCLIP's KL soft-target video-text loss, single process or across ranks."""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
import torch.nn.functional as F

from actionclip.mixing import Mix

# Targets are softmax(TARGET_SHARPNESS * G) over a row, G[i, j] = 1 when video i matches text j: text j
# prompts a class of sample j, and it matches video i when that class is video i's label (or in its label set).
TARGET_SHARPNESS = 10.0


def _at_least_fp32(tensor: torch.Tensor) -> torch.Tensor:
    # Softmax/KL in float32 also when the model runs in bf16/fp16.
    return tensor.to(torch.promote_types(tensor.dtype, torch.float32))


def is_distributed() -> bool:
    """True in a torch.distributed run of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    # The backward of this all_gather sums each rank's gradient back onto the rank that owns the rows.
    return torch.cat(dist_fn.all_gather(tensor), dim=0)


def _gather(labels: torch.Tensor) -> torch.Tensor:
    gathered = [torch.empty_like(labels) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, labels)
    return torch.cat(gathered, dim=0)


def _kl_rows(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum over rows of KL(targets_row || softmax(logits_row))."""
    return F.kl_div(F.log_softmax(logits, dim=1), targets, reduction="sum")


def actionclip_loss(
    video_embedding: torch.Tensor,
    text_embedding: torch.Tensor,
    labels: torch.Tensor,
    logit_scale: torch.Tensor,
    gather: Optional[bool] = None,
    label_sets: Optional[torch.Tensor] = None,
    mix: Optional[Mix] = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """KL(softmax(10 G) || log_softmax(scale * cos(video, text))), both directions averaged.

    `video_embedding`, `text_embedding`: (B, D), row i of each belongs to sample i; `labels`: (B,), the
    class each text prompts; `logit_scale`: the (already exponentiated) scale. Single-label, G[i, j] =
    [labels_i == labels_j], the original's ground truth. Multi-label, `label_sets` (B, num_classes) bool
    holds each video's classes (labels_i one of them) and G[i, j] = label_sets[i, labels_j]: video i
    matches every text that names one of its classes, so video->text rows spread over them and a text's
    row over every video holding its class; with one label per video this is the single-label G. Per direction the loss is the original
    `KLDivLoss(mean) * batch`, i.e. the sum of row KLs over the batch size.

    Targets: T_v[i] = softmax(10 G[i, :]) (video i over the texts) and T_t[i] = softmax(10 G[:, i]) (text i
    over the videos). With `mix` (actionclip.mixing: video i is λ_i parts of sample i and 1 - λ_i of sample
    p_i = mix.partner[i], λ = mix.weight) each mixed video takes the λ-mix of its two samples' shares, in both
    directions:
        video -> text: T_v'[i, j] = λ_i T_v[i, j] + (1 - λ_i) T_v[p_i, j]  (a mix of two distributions);
        text -> video: T_t'[i, j] ∝ λ_j T_t[i, j] + (1 - λ_j) T_t[i, p_j], renormalised over j (a sample can be
        the partner of one video and be itself in another, so the shares of a row need not sum to 1).
    λ = 1 everywhere gives the unmixed targets (up to rounding). Then `label_smoothing` ε makes every target row
    (1 - ε) t + ε / N over its N = global batch entries.

    With `gather` (default: whenever torch.distributed runs with more than one rank) the embeddings of all
    ranks are gathered with gradient and this rank's rows are scored against the global batch. The returned
    value is the mean over this rank's rows, so averaging it over ranks (and averaging gradients, as
    DeepSpeed/DDP do) gives exactly the loss and gradients of one process on the concatenated batch.
    All ranks must pass the same batch size.
    """
    if gather is None:
        gather = is_distributed()
    video = F.normalize(_at_least_fp32(video_embedding), dim=-1)
    text = F.normalize(_at_least_fp32(text_embedding), dim=-1)
    logit_scale = _at_least_fp32(logit_scale)
    all_video, all_text, all_labels, all_sets = video, text, labels, label_sets
    if gather:
        all_video, all_text, all_labels = _gather_with_grad(video), _gather_with_grad(text), _gather(labels)
        # As uint8: gloo gathers no bool tensors.
        all_sets = None if label_sets is None else _gather(label_sets.to(torch.uint8)).bool()
    if label_sets is None:
        video_matches = text_matches = labels[:, None] == all_labels[None, :]
    else:
        video_matches = label_sets[:, all_labels]  # video i (this rank) vs text j (all ranks)
        text_matches = all_sets[:, labels].t()  # text i (this rank) vs video j (all ranks)
    video_targets, text_targets = _targets(video_matches, video.dtype), _targets(text_matches, video.dtype)
    if mix is not None:
        weight, partner = mix.weight.to(video.device, video.dtype), mix.partner.to(video.device)
        all_weight, all_partner = weight, partner
        if gather:  # partners are rows of the same rank's batch: as global rows
            all_weight, all_partner = _gather(weight), _gather(partner + dist.get_rank() * video.shape[0])
        video_targets = weight[:, None] * video_targets + (1 - weight[:, None]) * video_targets[partner]
        text_targets = all_weight[None, :] * text_targets + (1 - all_weight[None, :]) * text_targets[:, all_partner]
        text_targets = text_targets / text_targets.sum(dim=1, keepdim=True)
    if label_smoothing:
        video_targets, text_targets = (_smoothed(targets, label_smoothing) for targets in (video_targets, text_targets))
    video_to_text = _kl_rows(logit_scale * video @ all_text.t(), video_targets)
    text_to_video = _kl_rows(logit_scale * text @ all_video.t(), text_targets)
    return (video_to_text + text_to_video) / (2 * video.shape[0])


def _targets(matches: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return F.softmax(TARGET_SHARPNESS * matches.to(dtype), dim=1)


def _smoothed(targets: torch.Tensor, epsilon: float) -> torch.Tensor:
    return (1 - epsilon) * targets + epsilon / targets.shape[1]
