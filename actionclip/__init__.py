"""ActionCLIP on open_clip: video-text model, prompts, loss, clip mixing, optimiser groups, original checkpoints."""
from actionclip.fusion import SIM_HEADERS, build_fusion_head
from actionclip.loss import actionclip_loss, is_distributed
from actionclip.mixing import Mix, draw_mix, mix_clips
from actionclip.model import ActionCLIP, build_model
from actionclip.original_ckpt import (
    export_original_checkpoint,
    import_original_checkpoint,
    read_original_checkpoint,
    save_original_checkpoint,
)
from actionclip.params import freeze_towers, param_groups
from actionclip.prompts import (
    ACTIONCLIP_TEMPLATES,
    EVAL_LOGIT_SCALE,
    PromptTable,
    encode_prompt_table,
    score_videos,
)
from actionclip.temporal import temporal_shift
from actionclip.weights import register_model_configs, resolve_model_name

__all__ = [
    "ACTIONCLIP_TEMPLATES",
    "ActionCLIP",
    "EVAL_LOGIT_SCALE",
    "Mix",
    "PromptTable",
    "SIM_HEADERS",
    "actionclip_loss",
    "build_fusion_head",
    "build_model",
    "draw_mix",
    "encode_prompt_table",
    "export_original_checkpoint",
    "freeze_towers",
    "import_original_checkpoint",
    "is_distributed",
    "mix_clips",
    "param_groups",
    "read_original_checkpoint",
    "register_model_configs",
    "resolve_model_name",
    "save_original_checkpoint",
    "score_videos",
    "temporal_shift",
]
