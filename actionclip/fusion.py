"""Post-network fusion heads ("sim_header"): (videos, frames, D) frame embeddings -> (videos, D).

Attribute names mirror the original ActionCLIP fusion model, so its `fusion_model_state_dict` (minus the
DataParallel `module.` prefix) loads into these modules key for key.
"""
from __future__ import annotations

from functools import partial
from typing import Optional

import torch
from open_clip.transformer import LayerNorm, QuickGELU, Transformer
from torch import nn

SIM_HEADERS = ("meanP", "Conv_1D", "LSTM", "Transf", "Transf_cls")
CONV1D_LAYOUTS = ("transpose", "original")  # see ChannelShiftConv

# Frame position table of the `Transf` head: sized like CLIP's text context, as in the original.
MAX_FRAMES = 77
TRANSF_LAYERS = 6
TRANSF_CLS_LAYERS = 6
TRANSF_CLS_HEADS = 8


def _normal_init(module: nn.Module, truncated: bool = False) -> None:
    """The original heads' init: N(0, 0.02) linear/embedding weights, zero biases, unit norms."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        with torch.no_grad():
            if truncated:
                nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
            else:
                nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class MeanPooling(nn.Module):
    """`meanP`: the mean over frames."""

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return frames.mean(dim=1)


class ChannelShiftConv(nn.Module):
    """`Conv_1D`: residual depthwise temporal conv (k=3), initialised as a channel shift.

    At initialisation (in the 'transpose' layout) the first D/4 channels look one frame back, the middle D/2
    are the identity and the last D/4 look one frame ahead; the output is mean over frames of (x + conv(x)).

    `layout` is how the (B, T, D) frames reach the conv. 'transpose' (this trainer's own): each channel's
    values over time. 'original': the original ActionCLIP code's `x.view(-1, D, T)`, which re-reads the
    same memory as (B, D, T) instead of transposing it, so each conv row holds T consecutive values of the
    flattened frames; its checkpoints were trained that way and predict as they did only with it.
    """

    def __init__(self, embed_dim: int, layout: str = "transpose") -> None:
        super().__init__()
        self.layout = layout
        self.shift = nn.Conv1d(embed_dim, embed_dim, 3, padding=1, groups=embed_dim, bias=False)
        quarter, half = embed_dim // 4, embed_dim // 2
        weight = torch.zeros(embed_dim, 1, 3)
        weight[:quarter, 0, 0] = 1.0
        weight[quarter:quarter + half, 0, 1] = 1.0
        weight[quarter + half:, 0, 2] = 1.0
        with torch.no_grad():
            self.shift.weight.copy_(weight)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        videos, num_frames, channels = frames.shape
        if self.layout == "original":
            conv_input = frames.contiguous().view(videos, channels, num_frames)
        else:
            conv_input = frames.transpose(1, 2)
        shifted = self.shift(conv_input).transpose(1, 2)
        return (frames + shifted).mean(dim=1)


class LSTMFusion(nn.Module):
    """`LSTM`: residual single-layer LSTM over frames, then the mean."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.lstm_visual = nn.LSTM(embed_dim, embed_dim, num_layers=1, batch_first=True)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm_visual(frames)
        return (frames + hidden).mean(dim=1)


def transf_heads(embed_dim: int, text_width: Optional[int] = None) -> int:
    """Attention heads of the `Transf` head. As in the original: one per 64 channels of CLIP's text
    transformer width (`text_width`; D for models without an OpenAI-layout text tower), at least one."""
    width = text_width or embed_dim
    heads = max(1, width // 64)
    if embed_dim % heads:
        raise ValueError(f"the Transf head would run {heads} attention heads (one per 64 channels of width {width}, "
                         f"as the original ActionCLIP) on D={embed_dim} embeddings, which they do not divide; "
                         f"choose another sim_header or a model whose embed_dim is a multiple of {heads}")
    return heads


class TransformerFusion(nn.Module):
    """`Transf`: frame position embedding + 6 residual attention blocks of width D, residual, mean."""

    def __init__(self, embed_dim: int, heads: int) -> None:
        super().__init__()
        self.frame_position_embeddings = nn.Embedding(MAX_FRAMES, embed_dim)
        self.transformer = Transformer(
            embed_dim, TRANSF_LAYERS, heads,
            act_layer=QuickGELU, norm_layer=partial(LayerNorm, eps=1e-12))
        self.apply(_normal_init)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        num_frames = frames.shape[1]
        if num_frames > MAX_FRAMES:
            raise ValueError(f"Transf head supports up to {MAX_FRAMES} frames, got {num_frames}")
        positions = self.frame_position_embeddings.weight[:num_frames].to(frames.dtype)
        return (frames + self.transformer(frames + positions)).mean(dim=1)


class ClsTokenEncoder(nn.Module):
    """Class token + learned positions + a 6-layer post-norm encoder; returns the class token's output."""

    def __init__(self, embed_dim: int, num_frames: int) -> None:
        super().__init__()
        if embed_dim % TRANSF_CLS_HEADS:
            raise ValueError(f"Transf_cls needs an embedding size divisible by {TRANSF_CLS_HEADS}, got {embed_dim}")
        layer = nn.TransformerEncoderLayer(embed_dim, TRANSF_CLS_HEADS, batch_first=True)
        self.transformer_enc = nn.TransformerEncoder(
            layer, TRANSF_CLS_LAYERS, norm=nn.LayerNorm(embed_dim), enable_nested_tensor=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_frames + 1, embed_dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02, a=-0.04, b=0.04)
        nn.init.trunc_normal_(self.pos_embed, std=0.02, a=-0.04, b=0.04)
        self.apply(partial(_normal_init, truncated=True))

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.shape[1] + 1 != self.pos_embed.shape[1]:
            raise ValueError(f"Transf_cls head was built for {self.pos_embed.shape[1] - 1} frames, "
                             f"got {frames.shape[1]}")
        tokens = torch.cat([self.cls_token.expand(frames.shape[0], -1, -1), frames], dim=1)
        return self.transformer_enc(tokens + self.pos_embed)[:, 0]


class ClsTransformerFusion(nn.Module):
    """`Transf_cls`: the class-token encoder's output is the video embedding."""

    def __init__(self, embed_dim: int, num_frames: int) -> None:
        super().__init__()
        self.transformer = ClsTokenEncoder(embed_dim, num_frames)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.transformer(frames)


def check_sim_header(sim_header: str, conv1d_layout: str = "transpose") -> None:
    if sim_header not in SIM_HEADERS:
        raise ValueError(f"unknown sim_header {sim_header!r}; choose one of {', '.join(SIM_HEADERS)}")
    if conv1d_layout not in CONV1D_LAYOUTS:
        raise ValueError(f"unknown conv1d_layout {conv1d_layout!r}; choose one of {', '.join(CONV1D_LAYOUTS)}")
    if conv1d_layout == "original" and sim_header != "Conv_1D":
        raise ValueError(f"conv1d_layout 'original' is a layout of the Conv_1D head; with sim_header "
                         f"{sim_header!r} leave it at 'transpose'")


def build_fusion_head(sim_header: str, embed_dim: int, num_frames: int, text_width: Optional[int] = None,
                      conv1d_layout: str = "transpose") -> nn.Module:
    """The fusion head named `sim_header` (one of SIM_HEADERS) for D=`embed_dim` frame embeddings.

    `text_width`: the CLIP text transformer's width, which sets the `Transf` head's attention heads;
    `conv1d_layout`: the `Conv_1D` head's input layout (see ChannelShiftConv)."""
    check_sim_header(sim_header, conv1d_layout)
    if sim_header == "meanP":
        return MeanPooling()
    if sim_header == "Conv_1D":
        return ChannelShiftConv(embed_dim, conv1d_layout)
    if sim_header == "LSTM":
        return LSTMFusion(embed_dim)
    if sim_header == "Transf":
        return TransformerFusion(embed_dim, transf_heads(embed_dim, text_width))
    return ClsTransformerFusion(embed_dim, num_frames)
