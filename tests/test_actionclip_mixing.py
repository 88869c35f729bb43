"""Mixup / CutMix on whole clips and the KL targets mixed to match: clips against their originals, the loss
against an independent NumPy computation (mixing matrices), and gathered across 2 gloo ranks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from test_actionclip_loss import WORLD, random_batch, random_label_sets

from actionclip import Mix, actionclip_loss, draw_mix, mix_clips

B, T, H, W = 6, 3, 16, 20


def clips(batch: int = B, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, T, 3, H, W, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_mixup_clips_are_lambda_mixes_of_the_originals_with_one_weight_per_clip():
    video = clips()
    mix = draw_mix(B, (H, W), np.random.default_rng(0), mixup=0.4)
    assert sorted(mix.partner.tolist()) == list(range(B)) and (mix.boxes == 0).all()
    assert ((mix.blend > 0) & (mix.blend < 1)).all() and torch.equal(mix.weight, mix.blend)
    mixed = mix_clips(video, mix).numpy()
    original, lam, partner = video.numpy(), mix.blend.numpy(), mix.partner.numpy()
    for i in range(B):  # every frame of clip i: the same λ_i
        np.testing.assert_allclose(mixed[i], lam[i] * original[i] + (1 - lam[i]) * original[partner[i]], rtol=1e-12)


def test_cutmix_pastes_one_box_into_every_frame_of_a_clip():
    video = clips(16, seed=1)
    mix = draw_mix(16, (H, W), np.random.default_rng(2), cutmix=1.0)
    mixed = mix_clips(video, mix)
    assert torch.equal(mix.blend, torch.ones(16))
    pasted = 0
    for i, (top, bottom, left, right) in enumerate(mix.boxes.tolist()):
        inside = torch.zeros(H, W, dtype=torch.bool)
        inside[top:bottom, left:right] = True
        partner = video[mix.partner[i]]
        assert torch.equal(mixed[i][:, :, inside], partner[:, :, inside])  # every frame, the same box
        assert torch.equal(mixed[i][:, :, ~inside], video[i][:, :, ~inside])
        assert mix.weight[i].item() == pytest.approx(1 - inside.sum().item() / (H * W), abs=1e-12)
        pasted += int(inside.any() and mix.partner[i] != i)
    assert pasted >= 8 and 0 < mix.weight.min() and mix.weight.max() <= 1


def test_mix_prob_both_kinds_seeding_and_dtype():
    video = clips(64, seed=3).float()
    untouched = draw_mix(64, (H, W), np.random.default_rng(4), mixup=0.5, cutmix=0.5, mix_prob=0.0)
    assert torch.equal(mix_clips(video, untouched), video) and torch.equal(untouched.weight, torch.ones(64))
    both = draw_mix(64, (H, W), np.random.default_rng(4), mixup=0.5, cutmix=0.5)
    blended, boxed = both.blend < 1, (both.boxes[:, 1] > both.boxes[:, 0]) & (both.boxes[:, 3] > both.boxes[:, 2])
    assert blended.sum() > 10 and boxed.sum() > 10 and not (blended & boxed).any()
    again = draw_mix(64, (H, W), np.random.default_rng(4), mixup=0.5, cutmix=0.5)
    other = draw_mix(64, (H, W), np.random.default_rng(5), mixup=0.5, cutmix=0.5)
    assert all(torch.equal(getattr(both, key), getattr(again, key)) for key in ("partner", "blend", "boxes"))
    assert not torch.equal(both.partner, other.partner)
    assert mix_clips(video.bfloat16(), both).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="at least one"):
        draw_mix(4, (H, W), np.random.default_rng(0))
    with pytest.raises(ValueError, match="B = 64"):
        mix_clips(video[:4], both)


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def numpy_mixed_loss(video, text, labels, scale, partner, weight, label_sets=None, smoothing=0.0) -> float:
    """Targets as matrices: P[i, i] += λ_i, P[i, p_i] += 1 - λ_i (mixed video i = row i of P times the samples);
    video->text T_v' = P T_v, text->video T_t' = T_t P^T with rows renormalised; then smoothing; KL per row."""
    video = video / np.linalg.norm(video, axis=1, keepdims=True)
    text = text / np.linalg.norm(text, axis=1, keepdims=True)
    if label_sets is None:
        label_sets = labels[:, None] == np.arange(labels.max() + 1)[None, :]
    matches = label_sets[:, labels].astype(np.float64)  # [video i, text j]
    batch = len(labels)
    mixing = np.zeros((batch, batch))
    mixing[np.arange(batch), np.arange(batch)] += weight
    mixing[np.arange(batch), partner] += 1 - weight
    video_targets = mixing @ softmax_rows(10 * matches)
    text_targets = softmax_rows(10 * matches.T) @ mixing.T
    text_targets /= text_targets.sum(axis=1, keepdims=True)

    def kl(logits, target):
        target = (1 - smoothing) * target + smoothing / target.shape[1]
        log_q = np.log(softmax_rows(logits))
        return (target * (np.log(target) - log_q)).sum() / batch

    logits = scale * video @ text.T
    return (kl(logits, video_targets) + kl(logits.T, text_targets)) / 2


@pytest.mark.parametrize("multi_label", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_mixed_targets_equal_the_numpy_mixing_matrices(multi_label, smoothing):
    video, text, labels = random_batch(10, seed=7)
    label_sets = random_label_sets(labels, 5, seed=7) if multi_label else None
    mix = draw_mix(10, (H, W), np.random.default_rng(8), mixup=0.4, cutmix=1.0, mix_prob=0.8)
    assert (mix.weight < 1).sum() >= 5 and (mix.partner != torch.arange(10)).sum() >= 5
    loss = actionclip_loss(video, text, labels, torch.tensor(12.0, dtype=torch.float64), label_sets=label_sets,
                           mix=mix, label_smoothing=smoothing)
    expected = numpy_mixed_loss(video.numpy(), text.numpy(), labels.numpy(), 12.0, mix.partner.numpy(),
                                mix.weight.numpy(), None if label_sets is None else label_sets.numpy(), smoothing)
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    unmixed = actionclip_loss(video, text, labels, torch.tensor(12.0, dtype=torch.float64), label_sets=label_sets,
                              label_smoothing=smoothing)
    assert loss.item() != pytest.approx(unmixed.item(), rel=1e-3)


def test_a_mix_that_mixes_nothing_and_no_smoothing_give_the_original_loss():
    video, text, labels = random_batch(8, seed=9)
    scale = torch.tensor(14.3, dtype=torch.float64)
    nothing = draw_mix(8, (H, W), np.random.default_rng(0), mixup=0.4, mix_prob=0.0)
    original = actionclip_loss(video, text, labels, scale)
    assert actionclip_loss(video, text, labels, scale, mix=nothing).item() == pytest.approx(original.item(), rel=1e-12)
    assert actionclip_loss(video, text, labels, scale, label_smoothing=0.0).item() == original.item()
    smoothed = actionclip_loss(video, text, labels, scale, label_smoothing=0.2)
    assert smoothed.item() == pytest.approx(numpy_mixed_loss(video.numpy(), text.numpy(), labels.numpy(), 14.3,
                                                             np.arange(8), np.ones(8), smoothing=0.2), rel=1e-9)


def _rank_main(rank: int, init_file: str, inputs_path: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    data = torch.load(inputs_path)
    video, text = (data[key].chunk(WORLD)[rank].clone().requires_grad_() for key in ("video", "text"))
    labels, label_sets = (data[key].chunk(WORLD)[rank] for key in ("labels", "label_sets"))
    scale = data["scale"].clone().requires_grad_()
    loss = actionclip_loss(video, text, labels, scale, label_sets=label_sets, mix=Mix(*data["mixes"][rank], (H, W)),
                           label_smoothing=0.1)
    loss.backward()
    torch.save({"loss": loss.detach(), "video": video.grad, "text": text.grad, "scale": scale.grad},
               Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_rank_mixed_loss_and_gradients_equal_single_process_on_the_global_batch(tmp_path):
    """Each rank mixes its own clips (partners are local rows); the gathered targets must be the global batch's."""
    video, text, labels = random_batch(8, seed=10)
    label_sets = random_label_sets(labels, 4, seed=10)
    mixes = [draw_mix(4, (H, W), np.random.default_rng(11 + rank), mixup=0.4, cutmix=1.0) for rank in range(WORLD)]
    scale = torch.tensor(20.0, dtype=torch.float64)
    torch.save({"video": video, "text": text, "labels": labels, "scale": scale, "label_sets": label_sets,
                "mixes": [(mix.partner, mix.blend, mix.boxes) for mix in mixes]}, tmp_path / "inputs.pt")
    mp.spawn(_rank_main, args=(str(tmp_path / "init"), str(tmp_path / "inputs.pt"), str(tmp_path)),
             nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    # The global batch's Mix: rank r's partners shifted to its rows; weights follow from the boxes.
    global_mix = Mix(torch.cat([mix.partner + 4 * r for r, mix in enumerate(mixes)]),
                     torch.cat([mix.blend for mix in mixes]), torch.cat([mix.boxes for mix in mixes]), (H, W))
    video.requires_grad_()
    text.requires_grad_()
    scale.requires_grad_()
    global_loss = actionclip_loss(video, text, labels, scale, gather=False, label_sets=label_sets, mix=global_mix,
                                  label_smoothing=0.1)
    global_loss.backward()
    torch.testing.assert_close(torch.stack([r["loss"] for r in ranks]).mean(), global_loss.detach())
    torch.testing.assert_close(torch.stack([r["scale"] for r in ranks]).mean(), scale.grad)
    torch.testing.assert_close(torch.cat([r["video"] for r in ranks]) / WORLD, video.grad)
    torch.testing.assert_close(torch.cat([r["text"] for r in ranks]) / WORLD, text.grad)
