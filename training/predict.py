"""`predict`: top-5 labels for any video files (any codec PyAV reads, H.264 included)."""
from __future__ import annotations

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
from training.config import RunConfig
from training.engine import Dist
from training.logs import console


def video_clip(path: Path, spec: ClipConfig) -> torch.Tensor:
    """(1, T, 3, S, S): segment-centre frames, resized and centre-cropped as in validation.

    Only the GOPs that hold those frames are decoded (the whole video when its GOPs are not closed).
    """
    data = path.read_bytes()
    indices = sample_frame_indices(count_packets(data), spec.num_frames, train=False)
    frames = torch.from_numpy(decode_clip(data, indices)).permute(0, 3, 1, 2)
    return eval_views(frames, spec)


@torch.no_grad()
def predict(config: RunConfig, dist: Dist, checkpoint_path: str, labels_csv: str | None, videos: list[str],
            top_k: int = 5) -> list[dict]:
    config, model, trained_classes = components.model_for_evaluation(config, checkpoint_path, dist.device)
    classes = components.class_names(labels_csv, None, "--labels") if labels_csv else trained_classes
    if not classes:
        raise components.ConfigError("predict needs --labels L.csv (id,name) for this checkpoint")
    model.eval()
    text = encode_prompt_table(model, components.prompt_table(config, classes, dist.device))
    spec = ClipConfig("val", num_frames=config.data.num_frames, image_size=model.image_size[0],
                      mean=model.image_mean, std=model.image_std)
    predictions, unreadable = [], []
    for video in videos:
        path = Path(video)
        try:
            if not path.exists():
                raise FileNotFoundError("not found")
            views = video_clip(path, spec).to(dist.device)
        except Exception as error:  # one bad file is reported, the others are still predicted
            unreadable.append(f"{path}: cannot read this video ({error})")
            continue
        probabilities = score_videos(model.encode_video(views, normalize=True), text).mean(dim=0)
        top = probabilities.topk(min(top_k, len(classes)))
        predictions.append({"video": str(path), "top": [
            {"label": classes[i], "probability": float(p)} for p, i in zip(top.values, top.indices.tolist())]})
    if dist.is_main:
        for prediction in predictions:
            table = Table(title=prediction["video"])
            table.add_column("label")
            table.add_column("probability", justify="right")
            for entry in prediction["top"]:
                table.add_row(entry["label"], f"{entry['probability']:.3f}")
            console.print(table)
    if unreadable:
        raise components.ConfigError(f"{len(unreadable)} of {len(videos)} videos not predicted: " + "; ".join(unreadable))
    return predictions
