"""Protocols on small motion shards: few-shot, base-to-novel, zero-shot over splits and class draws, the report
table. Selections on real shard sets; runs through launch.py (DALI loader, DeepSpeed engine, checkpoints)."""
from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

import pytest

from pipelines import open_shards
from training import protocols
from training.config import ConfigError, load_config
from training.report_table import main as report_table
from training_fixtures import launch, records, settings, training_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> dict:
    return training_shards(tmp_path_factory.mktemp("data"))


def class_list(labels_csv: Path) -> list[str]:
    return [line.split(",", 1)[1] for line in labels_csv.read_text().splitlines()[1:]]


def stored_labels(manifest: Path) -> dict[str, int]:
    """key -> class id as build-shards wrote it (the .cls member), read with tarfile."""
    labels = {}
    for tar in sorted(manifest.parent.glob(manifest.name.replace(".manifest.json", "-*.tar"))):
        with tarfile.open(tar) as archive:
            for member in archive.getmembers():
                if member.name.endswith(".cls"):
                    labels[member.name.split(".", 1)[0]] = int(archive.extractfile(member).read())
    return labels


def test_few_shot_draws_k_videos_per_class_as_a_function_of_seed_and_shards(shards):
    train = open_shards(shards["train"])  # 10 classes x 6 videos
    classes = class_list(shards["labels"])
    stored = stored_labels(shards["train"])
    two = protocols.few_shot_positions(train, 2, 0, classes)
    picked = [stored[train.keys[p]] for p in two]
    assert sorted(picked) == sorted(list(range(10)) * 2) and list(two) == sorted(two)
    # Opened again (another rank, a resumed run): the same videos; another seed: others; K-1 shots inside K.
    assert (protocols.few_shot_positions(open_shards(shards["train"]), 2, 0, classes) == two).all()
    assert (protocols.few_shot_positions(train, 2, 1, classes) != two).any()
    assert set(two) <= set(protocols.few_shot_positions(train, 3, 0, classes))
    with pytest.raises(ConfigError, match=r"'data.shots' is 7 but class 'blinking' has 6 training videos in "
                                          r".*motion-train.manifest.json \(and 9 more classes\): lower data.shots"):
        protocols.few_shot_positions(train, 7, 0, classes)


def test_base_classes_half_a_list_or_a_csv(shards, tmp_path):
    classes = class_list(shards["labels"])
    half = protocols.base_class_ids("half", classes, 0, "labels.csv")
    assert len(half) == 5 and half == sorted(half) and half == protocols.base_class_ids("half", classes, 0, "x")
    assert half != protocols.base_class_ids("half", classes, 1, "x")
    assert protocols.base_class_ids(["Moving_Up", "blinking"], classes, 0, "x") == [0, 6]  # loose names, id order
    listed = tmp_path / "base.csv"
    listed.write_text("id,name\n9,shrinking\n2,growing\n")
    assert protocols.base_class_ids(str(listed), classes, 0, "x") == [2, 9]
    with pytest.raises(ConfigError, match="'data.base_classes': 'jumping' is not one of the 10 classes of labels.csv"):
        protocols.base_class_ids(["jumping"], classes, 0, "labels.csv")
    with pytest.raises(ConfigError, match="leaving no novel class"):
        protocols.base_class_ids(classes, classes, 0, "x")
    with pytest.raises(ConfigError, match="names 'growing' twice"):
        protocols.base_class_ids(["growing", "Growing"], classes, 0, "x")
    with pytest.raises(ConfigError, match="no such file"):
        protocols.base_class_ids(str(tmp_path / "absent.csv"), classes, 0, "x")
    listed.write_text("class\ngrowing\n")
    with pytest.raises(ConfigError, match=r"'data.base_classes': .*base.csv: missing column\(s\) \['name'\]"):
        protocols.base_class_ids(str(listed), classes, 0, "x")


def test_class_draws_summaries_and_config_keys():
    draws = [protocols.class_draw(10, 0.5, 0, protocols.DRAW_STREAM, draw) for draw in (1, 2)]
    assert all(len(draw) == 5 and draw == sorted(draw) for draw in draws) and draws[0] != draws[1]
    assert draws[0] == protocols.class_draw(10, 0.5, 0, protocols.DRAW_STREAM, 1)
    assert protocols.class_draw(3, 0.1, 0, protocols.DRAW_STREAM) != []  # at least one class
    assert protocols.harmonic_mean(80.0, 40.0) == pytest.approx(53.333, abs=1e-3)
    assert protocols.harmonic_mean(0.0, 0.0) == 0.0
    summary = protocols.mean_std([10.0, 20.0, 30.0])
    assert summary == {"mean": 20.0, "std": 10.0, "n": 3} and protocols.format_mean_std(summary) == "20.00 ± 10.00"
    assert protocols.format_mean_std(protocols.mean_std([12.5])) == "12.50"
    config = load_config(None, ["test.shards=[a.json, b.json]", "data.base_classes=[x, y]", "data.shots=4"])
    assert config.test.shards == ["a.json", "b.json"] and config.data.base_classes == ["x", "y"]
    for override, message in (("test.shards=3", "'test.shards' must be str or list[str], got int 3"),
                              ("data.base_classes=[a, 1]", "'data.base_classes' must be str or list[str], got list"),
                              ("data.shots=0", "'data.shots' must be >= 1, got 0"),
                              ("test.class_fraction=1.5", "'test.class_fraction' must be in (0, 1], got 1.5")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(None, [override])


def run_args(shards: dict, exp_dir: Path, **extra) -> list[str]:
    return ["--config", "configs/demo.yaml", *settings(shards, exp_dir, **extra)]


def launched(*args) -> str:
    result = launch(*args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def few_shot(shards, tmp_path_factory) -> tuple[Path, str]:
    """(experiment folder, what training printed) of a 2-shot run."""
    exp_dir = tmp_path_factory.mktemp("few") / "exp"
    return exp_dir, launched(*run_args(shards, exp_dir, **{"data.shots": 2}))


@pytest.fixture(scope="module")
def base_to_novel(shards, tmp_path_factory) -> tuple[Path, str, str]:
    """(experiment folder, what training printed, what `base-to-novel` printed) of a run on half the classes."""
    exp_dir = tmp_path_factory.mktemp("b2n") / "exp"
    trained = launched(*run_args(shards, exp_dir, **{"data.base_classes": "half", "solver.epochs": 1}))
    return exp_dir, trained, launched("base-to-novel", *run_args(shards, exp_dir, **ONE_VIEW))


@pytest.fixture(scope="module")
def zero_shot(few_shot, shards) -> tuple[list[str], str]:
    """(the shard sets, what `zero-shot` printed): the 2-shot model over two splits x two class draws."""
    exp_dir, _ = few_shot
    splits = [str(shards["val"]), str(shards["train"])]
    printed = launched("zero-shot", *run_args(shards, exp_dir, **{
        "test.shards": f"[{','.join(splits)}]", "test.labels": shards["labels"], "test.class_draws": 2, **ONE_VIEW}),
        "--checkpoint", exp_dir / "checkpoints" / "best.pt")
    return splits, printed


ONE_VIEW = {"test.num_clips": 1, "test.num_crops": 1}


@pytest.mark.slow
def test_few_shot_training_reads_k_videos_per_class(few_shot):
    exp_dir, printed = few_shot
    assert "few-shot: 2 videos per class x 10 classes = 20 of 60 training videos (seed 0)" in printed
    assert [entry["rank_sample_ranges"] for entry in records(exp_dir, "data")] == [[[0, 20]], [[0, 20]]]
    assert records(exp_dir, "train")[-1]["step"] == 2 * (20 // 8)


@pytest.mark.slow
def test_base_to_novel_trains_on_base_classes_and_scores_both_sides(base_to_novel, shards):
    import torch

    exp_dir, trained, printed = base_to_novel
    assert "base-to-novel: training on 5 base classes of 10 (30 of 60 training videos); novel: " in trained
    classes = class_list(shards["labels"])
    base = protocols.base_class_ids("half", classes, 0, "x")
    novel = [class_id for class_id in range(10) if class_id not in base]
    saved = torch.load(exp_dir / "checkpoints" / "best.pt", weights_only=True)
    assert saved["classes"] == [classes[class_id] for class_id in base]
    assert records(exp_dir, "data")[0]["rank_sample_ranges"] == [[0, 30]]
    assert "harmonic mean" in printed and "results-base-to-novel.json" in printed
    results = json.loads((exp_dir / "results-base-to-novel.json").read_text())
    stored, keys = stored_labels(shards["val"]), open_shards(shards["val"]).keys
    for side, ids in (("base", base), ("novel", novel)):
        scored = results[side]
        assert scored["classes"] == [classes[class_id] for class_id in ids] and scored["videos"] == 10
        # Each video's label is its class's place in that side's list, in reading order; names of the side only.
        assert scored["labels"] == [ids.index(stored[key]) for key in keys if stored[key] in ids]
        assert all(0 <= prediction < 5 for prediction in scored["predictions"])
    # The base side is what validation scored in training: the same base videos against the same base names.
    assert results["base"]["top1"] == pytest.approx(records(exp_dir, "val")[-1]["top1"], abs=1e-6)
    assert results["harmonic_mean"] == pytest.approx(
        protocols.harmonic_mean(results["base"]["top1"], results["novel"]["top1"]))


@pytest.mark.slow
def test_zero_shot_over_splits_and_class_draws(few_shot, zero_shot, shards):
    exp_dir, _ = few_shot
    splits, printed = zero_shot
    assert "mean ± std (4)" in printed
    results = json.loads((exp_dir / "results-zero-shot.json").read_text())
    evaluations = results["evaluations"]
    assert [(entry["shards"], entry["draw"]) for entry in evaluations] == [(s, d) for s in splits for d in (1, 2)]
    classes = class_list(shards["labels"])
    for entry in evaluations:
        ids = protocols.class_draw(10, 0.5, 0, protocols.DRAW_STREAM, entry["draw"])
        stored, keys = stored_labels(Path(entry["shards"])), open_shards(entry["shards"]).keys
        assert entry["classes"] == [classes[class_id] for class_id in ids]
        assert entry["labels"] == [ids.index(stored[key]) for key in keys if stored[key] in ids]
        assert all(0 <= prediction < 5 for prediction in entry["predictions"])
    assert results["summary"]["top1"] == pytest.approx(protocols.mean_std([entry["top1"] for entry in evaluations]))
    assert results["class_draws"] == 2 and results["class_fraction"] == 0.5


@pytest.mark.slow
def test_report_table_lays_out_every_runs_results(few_shot, zero_shot, base_to_novel, shards, tmp_path, capsys):
    exp_dir, _ = few_shot
    launched("test", *run_args(shards, exp_dir, **ONE_VIEW))
    b2n_dir = base_to_novel[0]
    out = tmp_path / "table.md"
    assert report_table([str(exp_dir), str(b2n_dir), "--out", str(out)]) == 0
    table = out.read_text()
    assert capsys.readouterr().out == table
    lines = table.splitlines()
    assert lines[0] == "| run | arch | frames | protocol | top-1 | top-5 | base | novel | HM | zero-shot top-1 |"
    tested = json.loads((exp_dir / "results-test.json").read_text())
    summary = json.loads((exp_dir / "results-zero-shot.json").read_text())["summary"]["top1"]
    assert lines[2] == (f"| {exp_dir} | RN-Tiny | 4 | 2-shot; zero-shot: 2 splits × 2 draws of 50% of the classes | "
                        f"{tested['top1']:.1f} | {tested['top5']:.1f} | – | – | – | "
                        f"{summary['mean']:.1f} ± {summary['std']:.1f} |")
    b2n = json.loads((b2n_dir / "results-base-to-novel.json").read_text())
    assert lines[3] == (f"| {b2n_dir} | RN-Tiny | 4 | base-to-novel (half) | – | – | {b2n['base']['top1']:.1f} | "
                        f"{b2n['novel']['top1']:.1f} | {b2n['harmonic_mean']:.1f} | – |")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report_table([str(exp_dir), str(empty)]) == 2
    assert f"error: {empty} holds no results-*.json" in capsys.readouterr().err


@pytest.mark.slow
def test_protocol_mistakes_are_one_line_errors(few_shot, base_to_novel, shards):
    few_dir, b2n_dir = few_shot[0], base_to_novel[0]
    cases = [
        (run_args(shards, few_dir.parent / "seven", **{"data.shots": 7}),
         "'data.shots' is 7 but class 'blinking' has 6 training videos in"),
        (["base-to-novel", *run_args(shards, b2n_dir, seed=1, **{"data.base_classes": "half"})],
         "does not match the classes of " + str(b2n_dir / "checkpoints" / "best.pt")),
        (["base-to-novel", *run_args(shards, few_dir)], "was trained on all 10 classes of 'data.labels'"),
        (["test", *run_args(shards, b2n_dir)], "base-to-novel for a model trained on 'data.base_classes'"),
        (["test", *run_args(shards, few_dir, **{"test.shards": f"[{shards['val']},{shards['train']}]"})],
         "'test.shards' lists 2 shard sets; test scores one (zero-shot scores each)"),
    ]
    for args, message in cases:
        result = launch(*args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr[-2000:])
        assert "Traceback" not in result.stderr and result.stderr.count("error: ") == 1
