"""`predict`: top-5 labels for any video files (any codec PyAV reads, H.264 included), from one centre view or
test mode's `num_clips` x `num_crops` views averaged, against the checkpoint's classes or any others."""
from __future__ import annotations

import re
from pathlib import Path

import torch
from rich.table import Table

from actionclip import encode_prompt_table, score_videos
from pipelines.baseline import eval_views
from pipelines.config import ClipConfig
from pipelines.pyav_decode import decode_clip
from pipelines.sampling import sample_frame_indices
from pipelines.sparse import count_packets
from training import components
from training.config import ConfigError, RunConfig
from training.engine import Dist
from training.logs import console


def video_views(path: Path, spec: ClipConfig) -> torch.Tensor:
    """(clips x crops, T, 3, S, S): the views test mode takes of a video (`spec.num_clips` clips at evenly spread
    offsets in time, each as `spec.num_crops` crops of the resized frames; 1 x 1 is validation's centre view).

    Only the GOPs that hold those frames are decoded (the whole video when its GOPs are not closed).
    """
    data = path.read_bytes()
    indices = sample_frame_indices(count_packets(data), spec.num_frames, train=False, num_clips=spec.num_clips,
                                   frame_interval=spec.frame_interval)
    frames = torch.from_numpy(decode_clip(data, indices)).permute(0, 3, 1, 2)
    views = eval_views(frames, spec)  # (crops, clips * T, 3, S, S), clip-major
    return views.reshape(spec.views, spec.num_frames, *views.shape[2:])


def parse_views(text: str) -> tuple[int, int]:
    """`--views CLIPSxCROPS` (e.g. 3x3) -> (num_clips, num_crops)."""
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip().lower())
    if match is None:
        raise ConfigError(f"--views {text!r}: expected CLIPSxCROPS, e.g. --views 3x3 (3 clips in time x 3 crops)")
    try:
        spec = ClipConfig("test", num_clips=int(match[1]), num_crops=int(match[2]))
    except ValueError as error:  # test mode's view rules
        raise ConfigError(f"--views {text}: {error}") from error
    return spec.num_clips, spec.num_crops


def parse_classes(text: str) -> list[str]:
    """`--classes "a,b,c"` -> the class names, in that order."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise ConfigError(f"--classes {text!r}: an empty class name; separate names with commas, e.g. "
                          f"--classes \"walking,running\"")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"--classes {text!r}: {repeated} named more than once; name each class once")
    return names


def label_set(labels_csv: str | None, named: list[str] | None, trained_classes: list[str] | None) -> list[str]:
    """The classes to score: --classes (`named`), --labels (CSV id,name), else the checkpoint's."""
    if named:
        return named
    classes = components.class_names(labels_csv, None, "--labels") if labels_csv else trained_classes
    if not classes:
        raise ConfigError("this checkpoint names no classes: pass --labels L.csv (id,name) or --classes \"a,b,c\"")
    return classes


@torch.no_grad()
def predict(config: RunConfig, dist: Dist, checkpoint_path: str, labels_csv: str | None, videos: list[str],
            top_k: int = 5, *, class_list: str | None = None, views: str = "1x1") -> list[dict]:
    if labels_csv and class_list:
        raise ConfigError("pass --labels L.csv or --classes \"a,b,c\", not both")
    named = parse_classes(class_list) if class_list else None
    num_clips, num_crops = parse_views(views)
    config, model, trained_classes = components.model_for_evaluation(config, checkpoint_path, dist.device)
    classes = label_set(labels_csv, named, trained_classes)
    spec = ClipConfig("test", num_frames=config.data.num_frames, frame_interval=config.data.frame_interval,
                      image_size=model.image_size[0], mean=model.image_mean, std=model.image_std,
                      num_clips=num_clips, num_crops=num_crops)
    model.eval()
    text = encode_prompt_table(model, components.prompt_table(config, classes, dist.device))
    predictions, unreadable = [], []
    for video in videos:
        path = Path(video)
        try:
            if not path.exists():
                raise FileNotFoundError("not found")
            clips = video_views(path, spec).to(dist.device)
        except Exception as error:  # one bad file is reported, the others are still predicted
            unreadable.append(f"{path}: cannot read this video ({error})")
            continue
        # Per-view class probabilities averaged over the views, as test mode scores a video.
        probabilities = score_videos(model.encode_video(clips, normalize=True), text).mean(dim=0)
        top = probabilities.topk(min(top_k, len(classes)))
        predictions.append({"video": str(path), "top": [
            {"label": classes[i], "probability": float(p)} for p, i in zip(top.values, top.indices.tolist())]})
    if dist.is_main:
        for prediction in predictions:
            table = Table(title=f"{prediction['video']} ({num_clips} clip(s) x {num_crops} crop(s))")
            table.add_column("label")
            table.add_column("probability", justify="right")
            for entry in prediction["top"]:
                table.add_row(entry["label"], f"{entry['probability']:.3f}")
            console.print(table)
    if unreadable:
        raise ConfigError(f"{len(unreadable)} of {len(videos)} videos not predicted: " + "; ".join(unreadable))
    return predictions
