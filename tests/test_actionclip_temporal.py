"""Shift (in-network temporal shift) on open_clip's ViT and ResNet towers, Joint (space-time attention) on ViT."""
import pytest
import torch

from actionclip import build_model, temporal_shift
from actionclip.temporal import JointSpaceTime, TemporalShiftBlock, TemporalShiftConv, resnet_bottlenecks, shift_channels

T = 4


def test_shift_matches_the_index_formula_and_leaves_the_class_token():
    videos, tokens, channels, fold_div = 2, 3, 16, 8
    x = torch.randn(videos * T, tokens, channels)
    out = temporal_shift(x, T, fold_div)
    fold = channels // fold_div
    xv, ov = x.view(videos, T, tokens, channels), out.view(videos, T, tokens, channels)
    for v in range(videos):
        for t in range(T):
            for n in range(tokens):
                for c in range(channels):
                    if n == 0 or c >= 2 * fold:
                        expected = xv[v, t, n, c]
                    elif c < fold:
                        expected = xv[v, t + 1, n, c] if t + 1 < T else 0.0
                    else:
                        expected = xv[v, t - 1, n, c] if t >= 1 else 0.0
                    assert ov[v, t, n, c] == expected, (v, t, n, c)


def test_feature_map_shift_moves_channel_slices_between_neighbouring_frames():
    videos, channels, fold_div = 3, 16, 4
    x = torch.randn(videos * T, channels, 5, 6)
    out = shift_channels(x, T, fold_div, channel_dim=1).view(videos, T, channels, 5, 6)
    xv, fold = x.view(videos, T, channels, 5, 6), channels // fold_div
    zero = torch.zeros(videos, 1, fold, 5, 6)
    torch.testing.assert_close(out[:, :, :fold], torch.cat([xv[:, 1:, :fold], zero], dim=1), rtol=0, atol=0)
    torch.testing.assert_close(out[:, :, fold:2 * fold], torch.cat([zero, xv[:, :-1, fold:2 * fold]], dim=1),
                               rtol=0, atol=0)
    torch.testing.assert_close(out[:, :, 2 * fold:], xv[:, :, 2 * fold:], rtol=0, atol=0)


def test_shift_rejects_a_frame_count_that_does_not_divide():
    with pytest.raises(ValueError, match="not a multiple of num_frames=4"):
        temporal_shift(torch.randn(6, 3, 16), T)


def tiny(**options):
    torch.manual_seed(0)
    return build_model("ViT-Tiny-16", "none", num_frames=T, **options)


def test_shift_wraps_every_visual_block_and_changes_the_output():
    plain, shifted = tiny(), tiny(tsm=True)
    blocks = shifted.clip.visual.transformer.resblocks
    assert len(blocks) == 2 and all(isinstance(b, TemporalShiftBlock) for b in blocks)
    assert any(".resblocks.0.net.attn.in_proj_weight" in k for k in shifted.state_dict())
    for p_plain, p_shifted in zip(plain.parameters(), shifted.parameters()):
        torch.testing.assert_close(p_plain, p_shifted)  # same seed, same weights: only the shift differs
    video = torch.randn(2, T, 3, 64, 64)
    with torch.no_grad():
        assert (plain.encode_video(video) - shifted.encode_video(video)).abs().max() > 1e-4


def test_joint_attends_over_all_frames_and_uses_the_time_embedding():
    model = tiny(joint=True).eval()
    assert isinstance(model.clip.visual.ln_pre, JointSpaceTime)
    seen = []
    model.clip.visual.transformer.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    video = torch.randn(2, T, 3, 64, 64)
    with torch.no_grad():
        out = model.encode_video(video)
        reversed_out = model.encode_video(video.flip(dims=[1]))
        model.clip.visual.ln_pre.time_embedding.zero_()
        no_time = model.encode_video(video)
        no_time_reversed = model.encode_video(video.flip(dims=[1]))
    assert out.shape == (2, 64)
    assert seen[0] == (2, 1 + 16 * T, 128)  # one sequence per video: class token + 4x4 patches x T frames
    assert (out - reversed_out).abs().max() > 1e-4
    # Without the time embedding, joint attention is blind to frame order.
    torch.testing.assert_close(no_time, no_time_reversed, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("options, message", [
    ({"tsm": True, "joint": True}, "cannot be combined"),
    ({"joint": True, "sim_header": "Transf"}, "use sim_header='meanP' with joint"),
])
def test_incompatible_options_are_rejected(options, message):
    with pytest.raises(ValueError, match=message):
        tiny(**options)


def test_shift_on_a_resnet_tower_makes_mean_pooling_see_frame_order():
    torch.manual_seed(0)
    # Residual branches open: with open_clip's zero init the bottlenecks' shifted branches add nothing.
    plain = build_model("RN-Tiny", "none", num_frames=T, sim_header="meanP", zero_init_residual=False).eval()
    torch.manual_seed(0)
    shifted = build_model("RN-Tiny", "none", num_frames=T, sim_header="meanP", tsm=True,
                          zero_init_residual=False).eval()
    bottlenecks = resnet_bottlenecks(shifted.clip.visual)
    assert len(bottlenecks) == 4 and all(isinstance(b.conv1, TemporalShiftConv) for b in bottlenecks)  # layers 1-1-1-1
    assert "clip.visual.layer1.0.conv1.net.weight" in shifted.state_dict()
    video = torch.randn(2, T, 3, 64, 64)
    with torch.no_grad():
        order_effect = [(m.encode_video(video) - m.encode_video(video.flip(dims=[1]))).abs().max() for m in (plain, shifted)]
    assert order_effect[0] < 1e-6  # float rounding only
    assert order_effect[1] > 1e-6 + 100 * order_effect[0]


@pytest.mark.parametrize("arch, channels", [("RN-Tiny", 16), ("ViT-Tiny-16", 128)])
def test_a_shift_div_that_would_shift_no_channel_is_refused(arch, channels):
    build_model(arch, "none", num_frames=T, tsm=True, shift_div=channels)  # one channel each way still shifts
    with pytest.raises(ValueError, match=f"shift_div {channels + 1} shifts no channels .* has {channels}; "
                                         f"choose shift_div between 2 and {channels}"):
        build_model(arch, "none", num_frames=T, tsm=True, shift_div=channels + 1)


def test_joint_needs_a_vit_tower():
    with pytest.raises(ValueError, match="needs an open_clip ViT image tower.*ModifiedResNet"):
        build_model("RN-Tiny", "none", num_frames=T, joint=True)


def test_grad_checkpointing_gives_the_same_outputs_and_gradients():
    video = torch.randn(2, T, 3, 64, 64)
    results = []
    for checkpointing in (False, True):
        model = tiny(tsm=True, grad_checkpointing=checkpointing)
        assert model.clip.visual.transformer.grad_checkpointing is checkpointing
        out = model.encode_video(video)
        out.square().sum().backward()
        results.append((out.detach(), model.clip.visual.conv1.weight.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])


@pytest.mark.parametrize("tsm", [False, True])
def test_grad_checkpointing_on_a_resnet_tower_keeps_outputs_gradients_and_batch_norm_statistics(tsm):
    """Recomputed bottlenecks give the same outputs and gradients, and BatchNorm statistics move once per step."""
    video = torch.randn(2, T, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    results = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = build_model("RN-Tiny", "none", num_frames=T, tsm=tsm, grad_checkpointing=checkpointing).train()
        saved, conv = [], model.clip.visual.layer1[0].conv2
        conv.forward = lambda x, forward=conv.forward: saved.append(1) or forward(x)  # counts its runs
        out = model.encode_video(video)
        out.square().sum().backward()
        norm = model.clip.visual.layer2[0].bn1
        results.append((out.detach(), model.clip.visual.layer3[0].conv2.weight.grad.clone(),
                        norm.running_mean.clone(), norm.running_var.clone(), len(saved)))
    for plain, checkpointed in zip(results[0][:4], results[1][:4]):
        torch.testing.assert_close(plain, checkpointed)
    assert (results[0][4], results[1][4]) == (1, 2)  # the checkpointed block really ran again in backward
    assert "forward" not in build_model("RN-Tiny", "none", num_frames=T).clip.visual.__dict__
