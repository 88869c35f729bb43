"""Optimiser parameter groups and tower freezing."""
import pytest
import torch

from actionclip import build_model, param_groups

LR, WD = 5e-6, 0.2


def groups_by_name(model, **kwargs):
    return {g["name"]: g for g in param_groups(model, lr=LR, weight_decay=WD, **kwargs)}


def names_in(model, group):
    ids = {id(p) for p in group["params"]}
    return {name for name, p in model.named_parameters() if id(p) in ids}


def test_groups_cover_every_parameter_once_with_tower_learning_rates():
    model = build_model("ViT-Tiny-16", "none", num_frames=4, sim_header="Transf")
    groups = groups_by_name(model, ratio=0.5, f_ratio=10.0)
    assert set(groups) == {"text", "text_no_decay", "visual", "visual_no_decay", "fusion", "fusion_no_decay"}
    assert all(set(g) == {"params", "lr", "weight_decay", "name"} for g in groups.values())
    grouped = [id(p) for g in groups.values() for p in g["params"]]
    assert len(grouped) == len(set(grouped)) == len(list(model.parameters()))
    for tower, lr in (("text", LR), ("visual", LR * 0.5), ("fusion", LR * 10.0)):
        assert groups[tower]["lr"] == groups[f"{tower}_no_decay"]["lr"] == pytest.approx(lr)
        assert groups[tower]["weight_decay"] == WD and groups[f"{tower}_no_decay"]["weight_decay"] == 0.0
    assert all(n.startswith("clip.visual.") for n in names_in(model, groups["visual"]))
    assert all(n.startswith("fusion.") for n in names_in(model, groups["fusion_no_decay"]))
    assert "clip.logit_scale" in names_in(model, groups["text_no_decay"])


def test_biases_norms_embeddings_and_scale_are_not_decayed():
    model = build_model("ViT-Tiny-16", "none", num_frames=4, sim_header="Transf")
    groups = groups_by_name(model)
    no_decay = set().union(*(names_in(model, g) for n, g in groups.items() if n.endswith("_no_decay")))
    decayed = set().union(*(names_in(model, g) for n, g in groups.items() if not n.endswith("_no_decay")))
    for name in ("clip.logit_scale", "clip.token_embedding.weight", "clip.positional_embedding",
                 "clip.visual.class_embedding", "clip.visual.positional_embedding", "clip.visual.ln_pre.weight",
                 "clip.visual.transformer.resblocks.0.attn.in_proj_bias", "clip.ln_final.bias",
                 "fusion.frame_position_embeddings.weight", "fusion.transformer.resblocks.0.ln_1.weight"):
        assert name in no_decay, name
    for name in ("clip.visual.conv1.weight", "clip.visual.proj", "clip.text_projection",
                 "clip.transformer.resblocks.0.mlp.c_fc.weight", "fusion.transformer.resblocks.0.attn.in_proj_weight"):
        assert name in decayed, name


def test_fix_text_and_fix_img_freeze_their_towers_and_leave_them_out():
    model = build_model("ViT-Tiny-16", "none", num_frames=4, sim_header="LSTM", fix_text=True)
    assert not model.clip.token_embedding.weight.requires_grad and model.clip.logit_scale.requires_grad
    assert model.clip.visual.conv1.weight.requires_grad
    assert {g["name"] for g in param_groups(model, LR, WD)} == {
        "text_no_decay", "visual", "visual_no_decay", "fusion", "fusion_no_decay"}

    joint = build_model("ViT-Tiny-16", "none", num_frames=4, joint=True, fix_img=True)
    trainable_visual = [n for n, p in joint.named_parameters() if p.requires_grad and ".visual." in n]
    assert trainable_visual == ["clip.visual.ln_pre.time_embedding"]  # new, not a CLIP weight
    optimizer = torch.optim.AdamW(param_groups(joint, LR, WD), betas=(0.9, 0.98), eps=1e-8)
    assert {g["name"] for g in optimizer.param_groups} == {"text", "text_no_decay", "visual_no_decay"}
