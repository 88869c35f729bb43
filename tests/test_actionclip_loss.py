"""KL soft-target loss: against an independent NumPy computation, and gathered across 2 gloo ranks."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from actionclip import actionclip_loss

WORLD = 2


def numpy_loss(video: np.ndarray, text: np.ndarray, labels: np.ndarray, scale: float,
               label_sets: np.ndarray | None = None) -> float:
    """L = 1/2 sum over directions of (1/B) sum_i KL(softmax(10 G_i) || softmax(logits_i)); G[i, j] = 1 when
    text j's class (labels_j) is video i's label, or in its label set; the text direction uses G transposed."""
    video = video / np.linalg.norm(video, axis=1, keepdims=True)
    text = text / np.linalg.norm(text, axis=1, keepdims=True)
    if label_sets is None:
        label_sets = labels[:, None] == np.arange(labels.max() + 1)[None, :]
    matches = label_sets[:, labels].astype(np.float64)  # [video i, text j]

    def kl(logits, same):
        target = np.exp(10 * same) / np.exp(10 * same).sum(axis=1, keepdims=True)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_q = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        return (target * (np.log(target) - log_q)).sum() / len(labels)

    logits = scale * video @ text.T
    return (kl(logits, matches) + kl(logits.T, matches.T)) / 2


def random_batch(batch: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    video = torch.randn(batch, 32, generator=generator, dtype=torch.float64)
    text = torch.randn(batch, 32, generator=generator, dtype=torch.float64)
    labels = torch.randint(0, 3, (batch,), generator=generator)  # 3 classes: labels repeat
    return video, text, labels


def random_label_sets(labels: torch.Tensor, num_classes: int, seed: int) -> torch.Tensor:
    """Label sets of 1-3 classes that hold each sample's prompted class."""
    generator = torch.Generator().manual_seed(seed)
    sets = torch.rand(len(labels), num_classes, generator=generator) < 0.3
    sets[torch.arange(len(labels)), labels] = True
    return sets


@pytest.mark.parametrize("batch, seed", [(1, 0), (6, 1), (16, 2)])
def test_loss_equals_numpy_formula(batch, seed):
    video, text, labels = random_batch(batch, seed)
    scale = torch.tensor(14.3, dtype=torch.float64)
    if batch > 3:
        assert len(labels.unique()) < batch  # repeated labels are part of the check
    loss = actionclip_loss(video, text, labels, scale)
    expected = numpy_loss(video.numpy(), text.numpy(), labels.numpy(), 14.3)
    assert loss.item() == pytest.approx(expected, rel=1e-9)


def test_multi_label_targets_follow_the_label_sets():
    video, text, labels = random_batch(12, seed=4)
    label_sets = random_label_sets(labels, 5, seed=4)
    assert (label_sets.sum(dim=1) > 1).any()  # some videos hold several classes
    scale = torch.tensor(11.0, dtype=torch.float64)
    loss = actionclip_loss(video, text, labels, scale, label_sets=label_sets)
    expected = numpy_loss(video.numpy(), text.numpy(), labels.numpy(), 11.0, label_sets.numpy())
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    assert loss.item() != pytest.approx(actionclip_loss(video, text, labels, scale).item(), rel=1e-3)
    one_each = torch.nn.functional.one_hot(labels, 5).bool()
    assert actionclip_loss(video, text, labels, scale, label_sets=one_each).item() == pytest.approx(
        actionclip_loss(video, text, labels, scale).item(), rel=1e-12)


def test_identical_embeddings_sharing_one_label_give_zero_loss():
    video = torch.ones(4, 8)
    text = torch.ones(4, 8)
    loss = actionclip_loss(video, text, torch.zeros(4, dtype=torch.long), torch.tensor(100.0))
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def _rank_main(rank: int, init_file: str, inputs_path: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    data = torch.load(inputs_path)
    rows = slice(rank * len(data["labels"]) // WORLD, (rank + 1) * len(data["labels"]) // WORLD)
    video = data["video"][rows].clone().requires_grad_()
    text = data["text"][rows].clone().requires_grad_()
    scale = data["scale"].clone().requires_grad_()
    label_sets = data["label_sets"][rows] if data["label_sets"] is not None else None
    loss = actionclip_loss(video, text, data["labels"][rows], scale, label_sets=label_sets)
    loss.backward()
    torch.save({"loss": loss.detach(), "video": video.grad, "text": text.grad, "scale": scale.grad},
               Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.parametrize("multi_label", [False, True])
def test_two_rank_gathered_loss_and_gradients_equal_single_process_on_the_global_batch(tmp_path, multi_label):
    video, text, labels = random_batch(8, seed=3)
    label_sets = random_label_sets(labels, 4, seed=3) if multi_label else None
    scale = torch.tensor(20.0, dtype=torch.float64)
    torch.save({"video": video, "text": text, "labels": labels, "scale": scale, "label_sets": label_sets},
               tmp_path / "inputs.pt")
    mp.spawn(_rank_main, args=(str(tmp_path / "init"), str(tmp_path / "inputs.pt"), str(tmp_path)),
             nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    video.requires_grad_()
    text.requires_grad_()
    scale.requires_grad_()
    global_loss = actionclip_loss(video, text, labels, scale, gather=False, label_sets=label_sets)
    global_loss.backward()

    # DeepSpeed/DDP average losses and parameter gradients over ranks; the gathered form must reproduce
    # the global batch under that averaging.
    torch.testing.assert_close(torch.stack([r["loss"] for r in ranks]).mean(), global_loss.detach())
    torch.testing.assert_close(torch.stack([r["scale"] for r in ranks]).mean(), scale.grad)
    # Each rank owns its rows; their gradient (summed over ranks by the gather's backward) is WORLD times
    # the global one, which the averaging of parameter gradients divides back out.
    torch.testing.assert_close(torch.cat([r["video"] for r in ranks]) / WORLD, video.grad)
    torch.testing.assert_close(torch.cat([r["text"] for r in ranks]) / WORLD, text.grad)
