"""Drop path and embedding dropout (network.drop_path / emb_dropout): training outputs change, eval outputs and
state dict keys do not; one drop decision per clip; gradient checkpointing replays the same drops."""
from __future__ import annotations

import pytest
import torch

from actionclip import build_model
from training import components
from training.config import RunConfig, with_values

T = 4


def inputs(clips: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    video = torch.randn(clips, T, 3, 64, 64, generator=generator)
    return video, torch.randint(1, 400, (clips, 77), generator=generator)


def pair(arch: str, **options) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(the model without, the model with drop path / emb dropout), same weights."""
    network = {"num_frames": T, "sim_header": "meanP", **options}
    rates = {key: network.pop(key) for key in ("drop_path", "emb_dropout") if key in network}
    if arch == "RN-Tiny":
        network["zero_init_residual"] = False  # closed residual branches would hide the drops
    plain = build_model(arch, "none", **network)
    dropped = build_model(arch, "none", **network, **rates)
    assert list(dropped.state_dict()) == list(plain.state_dict())  # same keys, same order: checkpoints fit
    dropped.load_state_dict(plain.state_dict())
    return plain, dropped


def outputs(model: torch.nn.Module, train: bool, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    video, text = inputs()
    torch.manual_seed(seed)
    with torch.no_grad():
        video_embedding, text_embedding, _ = model.train(train)(video, text)
    return video_embedding, text_embedding


@pytest.mark.parametrize("arch, options", [
    ("ViT-Tiny-16", {}), ("ViT-Tiny-16", {"tsm": True}), ("ViT-Tiny-16", {"joint": True}),
    ("RN-Tiny", {}), ("RN-Tiny", {"tsm": True}),
])
def test_drop_path_and_emb_dropout_change_training_outputs_only(arch, options):
    plain, dropped = pair(arch, drop_path=0.5, emb_dropout=0.3, **options)
    for got, expected in zip(outputs(dropped, train=False), outputs(plain, train=False)):
        assert torch.equal(got, expected)
    trained = outputs(dropped, train=True)
    for got, expected in zip(trained, outputs(plain, train=True)):
        assert (got - expected).abs().max() > 1e-3  # both towers
    assert not torch.equal(trained[0], outputs(dropped, train=True, seed=2)[0])  # drawn anew each forward


def test_emb_dropout_on_a_resnet_drops_only_the_text_tokens():
    """A ModifiedResNet has no token embeddings; the text tower's are dropped."""
    plain, dropped = pair("RN-Tiny", emb_dropout=0.3)
    (plain_video, plain_text), (video, text) = outputs(plain, train=True), outputs(dropped, train=True)
    assert torch.equal(video, plain_video) and (text - plain_text).abs().max() > 1e-3


def test_drop_path_rises_over_the_blocks_and_is_drawn_once_per_clip():
    _, dropped = pair("ViT-Tiny-16", drop_path=0.5)
    blocks = dropped.clip.visual.transformer.resblocks
    first, last = blocks[0], blocks[-1]
    assert not first.ls_1._forward_hooks and last.ls_1._forward_hooks  # rate 0 at the first block: no hook
    seen = {}
    last.ls_1.register_forward_hook(lambda module, args, output: seen.setdefault("branch", output))
    video, text = inputs(clips=32)
    torch.manual_seed(3)
    with torch.no_grad():
        dropped.train().encode_video(video)
    kept = seen["branch"].reshape(32, T, -1).abs().amax(dim=2) > 0  # (clip, frame)
    assert (kept.all(dim=1) | (~kept).all(dim=1)).all()  # all frames of a clip alike
    assert 4 <= kept[:, 0].sum() <= 28  # the last block at rate 0.5: some clips dropped, some kept


def test_gradient_checkpointing_replays_the_same_drops():
    _, dropped = pair("ViT-Tiny-16", drop_path=0.5, emb_dropout=0.3)
    _, checkpointed = pair("ViT-Tiny-16", drop_path=0.5, emb_dropout=0.3, grad_checkpointing=True)
    checkpointed.load_state_dict(dropped.state_dict())
    video, text = inputs()
    gradients = []
    for model in (dropped, checkpointed):
        torch.manual_seed(4)
        video_embedding, text_embedding, _ = model.train()(video, text)
        (video_embedding.sum() + text_embedding.sum()).backward()
        gradients.append(model.clip.visual.conv1.weight.grad)
    torch.testing.assert_close(gradients[0], gradients[1])


def test_rates_are_checked_and_evaluation_builds_without_them(tmp_path):
    with pytest.raises(ValueError, match=r"drop_path must be in \[0, 1\)"):
        build_model("ViT-Tiny-16", "none", num_frames=T, drop_path=1.0)
    config = with_values(RunConfig(), {"network.arch": "ViT-Tiny-16", "network.pretrained": "none",
                                       "data.num_segments": T, "data.input_size": 64, "network.drop_path": 0.2,
                                       "network.emb_dropout": 0.1}, "test")
    model = components.model_from_config(config)
    assert model.clip.visual.transformer.resblocks[-1].ls_2._forward_hooks  # the run's rates reach the model
    from training import checkpoint

    path = tmp_path / "best.pt"
    checkpoint.export_consolidated(path, model.state_dict(), config.as_dict(), ["a", "b"], 1, {})
    evaluation, evaluated, _ = components.model_for_evaluation(config, str(path), torch.device("cpu"))
    assert evaluation.network.drop_path == 0.0 and evaluation.network.emb_dropout == 0.0
    assert not evaluated.clip.visual.transformer.resblocks[-1].ls_2._forward_hooks
    assert checkpoint.open_checkpoint(path).config["network"]["drop_path"] == 0.2  # the run's, as trained
