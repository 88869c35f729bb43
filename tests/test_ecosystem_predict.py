"""`launch.py predict --classes a,b,c --views CLIPSxCROPS`: any class names, test mode's views averaged."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from actionclip import encode_prompt_table, score_videos
from ecosystem_fixtures import CLASSES, error_line, tiny_checkpoint
from media import decoded_frames, write_video
from pipelines.baseline import eval_views
from pipelines.config import ClipConfig
from pipelines.sampling import sample_frame_indices
from training import components
from training.config import RunConfig
from training_fixtures import launch

NAMES = ["juggling", "archery", "surfing", "riding a bike", "waving"]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("predict")
    # A wide video, so the three crops of a view differ, long enough for three clips of 4 frames.
    return {"best": tiny_checkpoint(root / "best.pt", 11),
            "video": write_video(root / "clip.mp4", video_frames=45, width=128, height=64, gop=8)}


def printed(stdout: str) -> dict[str, float]:
    """label -> probability of the one table predict printed."""
    rows = [line.split("│")[1:3] for line in stdout.splitlines() if line.count("│") == 3]
    return {label.strip(): float(probability) for label, probability in rows}


def expected(files: dict, names: list[str], num_clips: int, num_crops: int) -> dict[str, float]:
    """Top-5 probabilities as test mode scores a video: every clip x crop view decoded in full, sampled and cropped
    by the test loader's rules, per-view class probabilities averaged."""
    config, model, _ = components.model_for_evaluation(RunConfig(), str(files["best"]), torch.device("cpu"))
    model.eval()
    frames = torch.from_numpy(np.stack(decoded_frames(files["video"]))).permute(0, 3, 1, 2)
    spec = ClipConfig("test", num_frames=4, image_size=64, mean=model.image_mean, std=model.image_std,
                      num_clips=num_clips, num_crops=num_crops)
    indices = sample_frame_indices(len(frames), 4, train=False, num_clips=num_clips)
    views = eval_views(frames[indices], spec).reshape(num_clips * num_crops, 4, 3, 64, 64)
    with torch.no_grad():
        text = encode_prompt_table(model, components.prompt_table(config, names, torch.device("cpu")))
        probabilities = score_videos(model.encode_video(views, normalize=True), text).mean(dim=0)
    top = probabilities.topk(5)
    return {names[i]: float(p) for p, i in zip(top.values, top.indices.tolist())}


@pytest.mark.parametrize("views", ["3x3", "2x1", "1x3"])
def test_views_are_averaged_as_test_mode_scores_a_video(files, views):
    clips, crops = map(int, views.split("x"))
    result = launch("predict", "--checkpoint", files["best"], "--classes", ", ".join(NAMES), "--views", views,
                    files["video"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"clip.mp4 ({clips} clip(s) x {crops} crop(s))" in result.stdout
    got, want = printed(result.stdout), expected(files, NAMES, clips, crops)
    assert list(got) == list(want)
    assert got == pytest.approx(want, abs=1e-3)
    single = expected(files, NAMES, 1, 1)
    assert max(abs(want[name] - single[name]) for name in want) > 5e-3  # the views change the scores


def test_the_checkpoint_classes_without_classes_or_labels(files):
    result = launch("predict", "--checkpoint", files["best"], files["video"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(printed(result.stdout)) == set(CLASSES)


@pytest.mark.parametrize("arguments, message", [
    (("--views", "3x2"), "--views 3x2: num_crops must be 1 or 3"),
    (("--views", "three"), "--views 'three': expected CLIPSxCROPS, e.g. --views 3x3"),
    (("--classes", "archery,,surfing"), "an empty class name"),
    (("--classes", "archery,surfing,archery"), "['archery'] named more than once"),
    (("--classes", "archery", "--labels", "labels.csv"), "pass --labels L.csv or --classes"),
])
def test_bad_views_and_classes_are_named(files, arguments, message):
    assert message in error_line(launch("predict", "--checkpoint", files["best"], *arguments, files["video"]))
