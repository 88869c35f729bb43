"""`launch.py convert-config`: original ActionCLIP YAMLs (the keys of its configs/) as run configs, every key told."""
from __future__ import annotations

import re

import pytest
import yaml

from ecosystem_fixtures import error_line
from training.config import load_config
from training.convert_config import DIFFERS, MAPPED, NO_EFFECT, TO_DO, convert
from training_fixtures import launch

# The original's configs/k400/k400_train.yaml, as its keys and values stand.
K400_TRAIN = """\
resume:
pretrain:
seed: 1024
data:
    dataset: kinetics400
    modality: RGB
    num_segments: 8
    seg_length: 1
    split: 1
    batch_size: 128
    workers: 16
    gpus: 4
    index_bias: 1
    input_size: 224
    randaug:
        N: 2
        M: 9
    num_classes: 400
    image_tmpl: 'img_{:05d}.jpg'
    train_list: 'lists/k4001/train_frames_new.txt'
    val_list: 'lists/k4001/val_frames_re.txt'
    label_list: 'lists/kinetics_400_labels.csv'
network:
    arch: ViT-B/32
    init: True
    tsm: False
    drop_out: 0.0
    emb_dropout: 0.0
    type: clip_k400
    sim_header: "Transf"
    fix_text: False
    fix_img: False
    describe:
    joint: False
solver:
    type: cosine
    epochs: 50
    start_epoch: 0
    epoch_offset: 0
    optim: adamw
    lr: 5.e-6
    lr_warmup_step: 5
    momentum: 0.9
    weight_decay: 0.2
    lr_decay_step: 15
    lr_decay_factor: 0.1
    clip_gradient: 20
    loss_type: nll
    evaluate: False
    ratio: 1
    f_ratio: 10
logging:
    print_freq: 10
    eval_freq: 1
"""

# A UCF101 fine-tune in the style of the original's configs/ucf101/ucf_ft.yaml, with settings this trainer lacks.
UCF101_FT = """\
pretrain: 'exp/clip_k400/ViT-B/16/kinetics400/model_best.pt'
resume:
seed: 1024
data:
    dataset: ucf101
    modality: RGB
    num_segments: 8
    seg_length: 1
    split: 1
    batch_size: 30
    workers: 8
    gpus: 4
    num_classes: 101
    image_tmpl: 'img_{:05d}.jpg'
    train_list: 'lists/ucf101/train_rgb_split1.txt'
    val_list: 'lists/ucf101/val_rgb_split1.txt'
    label_list: 'lists/ucf_labels.csv'
    index_bias: 1
    input_size: 224
    randaug:
        N: 0
        M: 0
network:
    arch: ViT-B/16
    init: True
    tsm: True
    drop_out: 0.1
    emb_dropout: 0.0
    type: clip_ucf
    sim_header: "Conv_1D"
    fix_text: True
    fix_img: False
    describe:
solver:
    type: multistep
    epochs: 30
    start_epoch: 0
    epoch_offset: 0
    optim: sgd
    lr: 1.e-4
    lr_warmup_step: 2
    momentum: 0.9
    weight_decay: 0.0005
    lr_decay_step: 10
    lr_decay_factor: 0.1
    clip_gradient: 20
    loss_type: nll
    evaluate: False
    ratio: 1
    f_ratio: 10
    dataset_ratio: 2
logging:
    print_freq: 10
    eval_freq: 2
"""

# The original's test configs have no train_list; `pretrain` is the checkpoint they score.
K400_TEST = """\
pretrain: 'exp/model_best.pt'
seed: 1024
data:
    dataset: kinetics400
    num_segments: 8
    batch_size: 64
    val_list: 'lists/k4001/val_frames_re.txt'
    label_list: 'lists/kinetics_400_labels.csv'
    input_size: 224
    random_shift: False
network:
    arch: vit-b-32
    init: True
    sim_header: "meanP"
    bn_momentum: 0.1
    consensus_type: avg
    ratio: 1
logging:
    print_freq: 10
    eval_freq: 1
"""


def leaves(tree: dict, prefix: str = "") -> list[str]:
    return [key for name, value in tree.items() for key in
            (leaves(value, f"{prefix}{name}.") if isinstance(value, dict) and value else [f"{prefix}{name}"])]


def converted(text: str, tmp_path, name: str):
    original = tmp_path / name
    original.write_text(text)
    return original, convert(yaml.safe_load(text), str(original))


def test_launch_converts_the_k400_config_and_tells_every_key(tmp_path, monkeypatch):
    original = tmp_path / "k400_train.yaml"
    original.write_text(K400_TRAIN)
    out = tmp_path / "configs" / "k400.yaml"
    monkeypatch.setenv("COLUMNS", "1000")  # one table row per line
    result = launch("convert-config", original, "-o", out)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") == 6}
    assert set(rows) - {"original key"} == set(leaves(yaml.safe_load(K400_TRAIN)))
    assert re.search(r"network\.arch\s+│ 'ViT-B/32'\s+│ mapped\s+│ network\.arch: ViT-B-32", rows["network.arch"])
    assert "--format frames --annotations train=lists/k4001/train_frames_new.txt" in rows["data.train_list"]
    assert "--image-tmpl 'img_{:05d}.jpg' --index-bias 1" in rows["data.train_list"]
    assert "to do" in rows["data.val_list"] and "data.val_shards" in rows["data.val_list"]
    assert "no effect" in rows["solver.lr_decay_step"] and "multistep" in rows["solver.lr_decay_step"]
    assert f"wrote {out}" in result.stdout and "0 differs" in result.stdout
    config = load_config(out)
    assert (config.network.arch, config.network.pretrained, config.network.quick_gelu) == ("ViT-B-32", "openai", True)
    assert (config.data.num_frames, config.data.image_size, config.data.batch_size) == (8, 224, 32)  # 128 over 4 GPUs
    assert (config.data.randaug.N, config.data.randaug.M, config.data.labels) == (2, 9, "lists/kinetics_400_labels.csv")
    assert (config.solver.lr, config.solver.lr_warmup_step, config.solver.f_ratio) == (5e-6, 5, 10.0)
    assert config.logging.exp_dir == "exp/clip_k400/ViT-B-32/kinetics400"
    assert config.data.train_shards == "shards/kinetics400/kinetics400-train.manifest.json"  # what that command writes
    assert config.data.val_shards == "shards/kinetics400/kinetics400-val.manifest.json"
    assert "# to do: data.train_list" in out.read_text()
    again = launch("convert-config", original, "-o", out)
    assert f"{out} already exists: pass --overwrite" in error_line(again)
    assert launch("convert-config", original, "-o", out, "--overwrite").returncode == 0


def test_settings_without_an_equivalent_are_named_with_the_reason(tmp_path):
    original, conversion = converted(UCF101_FT, tmp_path, "ucf_ft.yaml")
    outcomes = {row.key: row.outcome for row in conversion.rows}
    assert {key for key, outcome in outcomes.items() if outcome.status == DIFFERS} == {
        "solver.type", "solver.optim", "solver.momentum", "solver.lr_decay_step",
        "solver.lr_decay_factor", "solver.dataset_ratio"}
    assert outcomes["network.drop_out"].sets == {"network.drop_path": 0.1}
    assert outcomes["network.emb_dropout"].sets == {"network.emb_dropout": 0.0}
    assert conversion.tree["network"]["drop_path"] == 0.1
    assert "cosine only" in outcomes["solver.lr_decay_step"].note
    assert "not a key of the original" in outcomes["solver.dataset_ratio"].note
    assert outcomes["data.batch_size"].sets == {"data.batch_size": 30}  # 30 does not split over 4 GPUs: as given
    tree = conversion.tree
    assert tree["network"]["pretrained"] == "exp/clip_k400/ViT-B/16/kinetics400/model_best.pt"
    assert (tree["network"]["sim_header"], tree["network"]["conv1d_layout"]) == ("Conv_1D", "original")
    assert tree["network"]["tsm"] and tree["network"]["fix_text"] and tree["logging"]["eval_freq"] == 2
    assert outcomes["network.init"].status == NO_EFFECT  # pretrain names the weights


def test_an_evaluation_config_scores_its_pretrain_checkpoint(tmp_path):
    original, conversion = converted(K400_TEST, tmp_path, "k400_test.yaml")
    statuses = {row.key: row.outcome.status for row in conversion.rows}
    assert statuses["pretrain"] == MAPPED and statuses["data.val_list"] == TO_DO
    assert statuses["network.bn_momentum"] == statuses["data.random_shift"] == NO_EFFECT
    assert conversion.tree["test"] == {"checkpoint": "exp/model_best.pt"}
    assert conversion.tree["network"]["arch"] == "ViT-B-32" and "pretrained" not in conversion.tree["network"]


@pytest.mark.parametrize("change, message", [
    (("arch: ViT-B/32", "arch: ViT-B/33"), r"'network\.arch': unknown model 'ViT-B/33': did you mean 'ViT-B-32'"),
    (('sim_header: "Transf"', 'sim_header: "Transformer"'), r"'network\.sim_header' must be one of"),
    (("lr: 5.e-6", "lr: fast"), r"'solver\.lr' must be a number"),
])
def test_values_the_trainer_cannot_run_stop_the_conversion_naming_the_key(tmp_path, change, message):
    original = tmp_path / "bad.yaml"
    original.write_text(K400_TRAIN.replace(*change))
    result = launch("convert-config", original, "-o", tmp_path / "out.yaml")
    assert re.search(message, error_line(result)) and str(original) in result.stderr
    assert not (tmp_path / "out.yaml").exists()


def test_a_file_that_is_not_a_config_is_named(tmp_path):
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    assert "the top level must be a mapping" in error_line(launch("convert-config", listing))
    assert "needs one original ActionCLIP YAML" in error_line(launch("convert-config"))
