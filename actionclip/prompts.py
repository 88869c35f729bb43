"""Text prompts: the ActionCLIP templates, a tokenised (template x class) table, train sampling, eval scoring."""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

ACTIONCLIP_TEMPLATES: tuple[str, ...] = (
    "a photo of action {}",
    "a picture of action {}",
    "Human action of {}",
    "{}, an action",
    "{} this is an action",
    "{}, a video of action",
    "Playing action of {}",
    "{}",
    "Playing a kind of action, {}",
    "Doing a kind of action, {}",
    "Look, the human is {}",
    "Can you recognize the action of {}?",
    "Video classification of {}",
    "A video of {}",
    "The man is {}",
    "The woman is {}",
)

# The original evaluation compares embeddings at CLIP's maximum logit scale, not the learned one.
EVAL_LOGIT_SCALE = 100.0


class PromptTable:
    """Token ids of every template filled with every class name: `tokens` is (templates, classes, context).

    Build it once per label set; `sample` draws one random template per training sample.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        tokenizer: Callable[[list[str]], torch.Tensor],
        templates: Sequence[str] = ACTIONCLIP_TEMPLATES,
    ) -> None:
        if not class_names:
            raise ValueError("a prompt table needs at least one class name")
        self.class_names = tuple(class_names)
        self.templates = tuple(templates)
        texts = [template.format(name) for template in self.templates for name in self.class_names]
        tokens = tokenizer(texts)
        self.tokens = tokens.view(len(self.templates), len(self.class_names), tokens.shape[-1])

    @property
    def num_templates(self) -> int:
        return self.tokens.shape[0]

    @property
    def num_classes(self) -> int:
        return self.tokens.shape[1]

    def to(self, device: torch.device | str) -> "PromptTable":
        """Move the table (in place) next to the labels it will be indexed with; returns self."""
        self.tokens = self.tokens.to(device)
        return self

    def sample(self, labels: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """(B,) class indices -> (B, context) tokens, each sample with its own random template."""
        labels = labels.to(self.tokens.device, torch.long)
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes}); got {labels.min()}..{labels.max()}")
        template = torch.randint(self.num_templates, labels.shape, generator=generator, device=self.tokens.device)
        return self.tokens[template, labels]


@torch.no_grad()
def encode_prompt_table(model: torch.nn.Module, table: PromptTable, chunk_size: int = 1024) -> torch.Tensor:
    """Normalised text embeddings of every prompt, (templates, classes, D), from `model.encode_text`.

    Compute this once per evaluation and reuse it for every batch (`score_videos`).
    """
    device = next(model.parameters()).device
    flat = table.tokens.reshape(-1, table.tokens.shape[-1])
    embeddings = torch.cat([model.encode_text(chunk.to(device)) for chunk in flat.split(chunk_size)])
    return F.normalize(embeddings.float(), dim=-1).view(table.num_templates, table.num_classes, -1)


def score_videos(
    video_embedding: torch.Tensor,
    class_text_embedding: torch.Tensor,
    logit_scale: float = EVAL_LOGIT_SCALE,
) -> torch.Tensor:
    """Class probabilities (B, classes): softmax over classes per template, averaged over templates."""
    video = F.normalize(video_embedding.float(), dim=-1)
    logits = logit_scale * torch.einsum("bd,tcd->btc", video, class_text_embedding.to(video))
    return logits.softmax(dim=-1).mean(dim=1)
