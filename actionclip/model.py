"""The ActionCLIP model: open_clip CLIP image tower on every frame, a fusion head, and the text tower."""
from __future__ import annotations

from typing import Optional

import open_clip
import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import QuickGELU
from open_clip.utils import to_2tuple
from torch import nn

from actionclip.dropout import add_tower_dropout, check_rate
from actionclip.fusion import ChannelShiftConv, build_fusion_head, check_sim_header
from actionclip.original_ckpt import import_original_checkpoint
from actionclip.params import freeze_towers
from actionclip.resnet_checkpointing import set_resnet_grad_checkpointing
from actionclip.temporal import add_joint_space_time, add_temporal_shift, resnet_bottlenecks
from actionclip.weights import WeightsSource, create_clip, resolve_model_name, resolve_weights


def check_options(num_frames: int, sim_header: str, tsm: bool, joint: bool, conv1d_layout: str = "transpose",
                  drop_path: float = 0.0, emb_dropout: float = 0.0) -> None:
    """Reject option combinations the model cannot build, before any weights are touched."""
    check_rate("drop_path", drop_path)
    check_rate("emb_dropout", emb_dropout)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    check_sim_header(sim_header, conv1d_layout)
    if tsm and joint:
        raise ValueError("tsm (Shift) and joint (Joint) cannot be combined: Shift works on per-frame tokens, "
                         "Joint merges the frames into one sequence")
    if joint and sim_header != "meanP":
        raise ValueError(f"joint produces one embedding per video, so there are no frames for the "
                         f"{sim_header} head to fuse; use sim_header='meanP' with joint")


class ActionCLIP(nn.Module):
    """Video-text model. `clip` is a built open_clip CLIP whose weights are already loaded.

    Attributes for data pipelines: `image_size` (H, W), `image_mean`, `image_std` (per RGB channel, for
    pixels scaled to [0, 1]), `num_frames`. `quick_gelu` and `conv1d_layout` tell what a state dict does not:
    the towers' activation and the Conv_1D head's layout.
    """

    def __init__(
        self,
        clip: nn.Module,
        embed_dim: int,
        num_frames: int,
        sim_header: str = "meanP",
        tsm: bool = False,
        joint: bool = False,
        shift_div: int = 8,
        conv1d_layout: str = "transpose",
        drop_path: float = 0.0,
        emb_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        check_options(num_frames, sim_header, tsm, joint, conv1d_layout, drop_path, emb_dropout)
        # A one-element logit scale instead of open_clip's 0-dim one: distributed wrappers that view every
        # parameter as bytes to broadcast it (DeepSpeed's engine does) reject 0-dim tensors.
        clip.logit_scale = nn.Parameter(clip.logit_scale.detach().reshape(1))
        self.clip = clip
        self.embed_dim = embed_dim
        self.num_frames = num_frames
        self.sim_header = sim_header
        self.tsm = tsm
        self.joint = joint
        if tsm:
            add_temporal_shift(clip.visual, num_frames, shift_div)
        if joint:
            add_joint_space_time(clip.visual, num_frames)
        add_tower_dropout(clip, drop_path, emb_dropout, frames_per_clip=1 if joint else num_frames)
        # The original sizes its Transf head from OpenAI CLIP's text transformer; other text towers have no such width.
        text_width = clip.transformer.width if isinstance(clip, open_clip.CLIP) else None
        self.fusion = build_fusion_head(sim_header, embed_dim, num_frames, text_width, conv1d_layout)
        preprocess = clip.visual.preprocess_cfg
        self.image_size: tuple[int, int] = tuple(to_2tuple(preprocess["size"]))
        self.image_mean: tuple[float, ...] = tuple(preprocess["mean"])
        self.image_std: tuple[float, ...] = tuple(preprocess["std"])

    @property
    def logit_scale(self) -> nn.Parameter:
        """The learned log temperature (forward returns its exponential)."""
        return self.clip.logit_scale

    @property
    def quick_gelu(self) -> bool:
        """Whether CLIP's towers run QuickGELU (OpenAI CLIP's activation) rather than GELU."""
        return any(isinstance(module, QuickGELU) for module in self.clip.modules())

    @property
    def conv1d_layout(self) -> str:
        """The Conv_1D head's input layout ('transpose' or 'original', see ChannelShiftConv); 'transpose' for
        the other heads."""
        return self.fusion.layout if isinstance(self.fusion, ChannelShiftConv) else "transpose"

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the image tower's blocks (ViT blocks, ResNet bottlenecks) in backward instead of storing
        their activations."""
        if isinstance(self.clip.visual, ModifiedResNet):
            set_resnet_grad_checkpointing(self.clip.visual, enable)
        else:
            self.clip.visual.set_grad_checkpointing(enable)

    def encode_video(self, video: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(B, T, 3, H, W) normalised frames -> (B, D) video embeddings."""
        expected = (self.num_frames, 3, *self.image_size)
        if video.ndim != 5 or tuple(video.shape[1:]) != expected:
            raise ValueError(f"video must be (batch, {', '.join(map(str, expected))}) = (B, T, 3, H, W) for this "
                             f"model, got {tuple(video.shape)}; match the pipeline's frames and crop size")
        batch = video.shape[0]
        visual_dtype = next(self.clip.visual.parameters()).dtype
        frames = video.reshape(-1, *expected[1:]).to(visual_dtype)
        # (B*T, D) per frame, or (B, D) per video with Joint, which the fusion head sees as one frame.
        frame_embedding = self.clip.encode_image(frames).view(batch, -1, self.embed_dim)
        video_embedding = self.fusion(frame_embedding)
        return F.normalize(video_embedding, dim=-1) if normalize else video_embedding

    def encode_text(self, tokens: torch.Tensor, normalize: bool = False) -> torch.Tensor:
        """(N, context) token ids -> (N, D) text embeddings."""
        return self.clip.encode_text(tokens, normalize=normalize)

    def forward(self, video: torch.Tensor, text_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised video (B, D) and text (N, D) embeddings and exp(logit scale)."""
        return (self.encode_video(video, normalize=True), self.encode_text(text_tokens, normalize=True),
                self.logit_scale.exp())


def open_residual_branches(visual: nn.Module, source: WeightsSource) -> None:
    """Set the last BN scale of every ModifiedResNet bottleneck to 1 (open_clip initialises it to 0)."""
    if not isinstance(visual, ModifiedResNet):
        raise ValueError(f"zero_init_residual=False applies to ModifiedResNet (RN*) image towers; this one is "
                         f"{type(visual).__name__}. Remove the option.")
    if source.kind != "none":
        raise ValueError(f"zero_init_residual=False changes a random init, but weights are loaded from "
                         f"{source.path or source.kind}; remove the option or use pretrained 'none'")
    for bottleneck in resnet_bottlenecks(visual):
        nn.init.ones_(bottleneck.bn3.weight)


def build_model(
    model_name: str,
    pretrained: str | WeightsSource | None = None,
    num_frames: int = 8,
    sim_header: str = "meanP",
    tsm: bool = False,
    joint: bool = False,
    grad_checkpointing: bool = False,
    fix_text: bool = False,
    fix_img: bool = False,
    quick_gelu: Optional[bool] = None,
    shift_div: int = 8,
    zero_init_residual: bool = True,
    conv1d_layout: str = "transpose",
    drop_path: float = 0.0,
    emb_dropout: float = 0.0,
    cache_dir: Optional[str] = None,
) -> ActionCLIP:
    """Build an ActionCLIP model from config values.

    model_name: an open_clip model name (open_clip.list_models(), incl. the configs in configs/models/),
        or a path to an open_clip model-config JSON.
    pretrained: None/'none' (random init), an open_clip tag (e.g. 'openai'), or a local file: an OpenAI CLIP
        .pt (TorchScript archive or state dict), an open_clip state dict (.bin/.pt/.safetensors), or an
        original ActionCLIP checkpoint (also loads its fusion head; options must match it; a Conv_1D one runs
        with conv1d_layout 'original'); or a WeightsSource from `read_weights_file`, for a file already read.
    quick_gelu: activation override; by default QuickGELU when the weights were trained with it
        (OpenAI tags and archives, ActionCLIP checkpoints), else the model config's choice. The model's
        `quick_gelu` tells which it got.
    shift_div: with tsm, 1/shift_div of the channels shift back and 1/shift_div forward.
    zero_init_residual: open_clip's random init of a ModifiedResNet zeroes the last BN scale of every
        bottleneck, so each residual branch starts closed; False starts them open (scale 1). Trained from
        scratch with AdamW, the closed branches barely open and the tower learns like a plain conv stack.
        Only for random init (pretrained 'none').
    conv1d_layout: 'transpose' (default) or 'original', the Conv_1D head's input layout (see ChannelShiftConv).
    drop_path, emb_dropout: stochastic depth (rising linearly over each tower's blocks to this rate) and dropout
        on the token embeddings, in both towers, training mode only (actionclip.dropout; 0: off).
    """
    check_options(num_frames, sim_header, tsm, joint, conv1d_layout, drop_path, emb_dropout)
    name = resolve_model_name(model_name)
    source = resolve_weights(name, pretrained, cache_dir)
    clip = create_clip(name, source, quick_gelu)
    if not zero_init_residual:
        open_residual_branches(clip.visual, source)
    embed_dim = open_clip.get_model_config(name)["embed_dim"]
    model = ActionCLIP(clip, embed_dim, num_frames, sim_header, tsm=tsm, joint=joint, shift_div=shift_div,
                       conv1d_layout=conv1d_layout, drop_path=drop_path, emb_dropout=emb_dropout)
    if source.kind == "actionclip":
        import_original_checkpoint(model, source.state, source=source.path)
    freeze_towers(model, fix_text=fix_text, fix_img=fix_img)
    model.set_grad_checkpointing(grad_checkpointing)
    return model
