"""What a benchmark run measures and at what size: a preset, then a training config, then command-line flags.

The run's shape (batch, frames, crop size, loader threads, model, precision) is the training config
itself, the typed tree launch.py reads (`Settings.run`); the flags below set keys of it and `--set`
sets any other. The rest of Settings says what to generate and how long to measure.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from training.config import RunConfig, load_config, with_values

from benchmarks.machine import REPO_ROOT

PRESET_NAMES = ("auto", "smoke", "cpu", "gpu")
SECTIONS = ("loader", "step", "e2e", "codecs", "lengths", "build")
SHARD_SECTIONS = ("loader", "step", "e2e")  # the sections that read the default shards
# Flags that set a training-config key, and the key; the report lists them by the flag's name.
RUN_FLAGS = {"seed": "seed", "batch_size": "data.batch_size", "num_frames": "data.num_segments",
             "input_size": "data.input_size", "threads": "data.workers", "prefetch": "data.prefetch",
             "arch": "network.arch", "pretrained": "network.pretrained", "sim_header": "network.sim_header",
             "precision": "deepspeed.precision"}
# Where every benchmark starts: batch 2 with 2 threads, random weights (throughput does not depend on them).
BENCH_RUN = {"seed": 0, "data.batch_size": 2, "data.workers": 2, "network.pretrained": "none"}


def _flag_value(run: RunConfig, key: str) -> Any:
    value = run
    for part in key.split("."):
        value = getattr(value, {"num_segments": "num_frames", "input_size": "image_size"}.get(part, part))
    return value


@dataclass(frozen=True)
class Settings:
    """Every knob of a run; the report records all of them."""

    preset: str
    run: RunConfig = field(default_factory=lambda: with_values(RunConfig(), BENCH_RUN, "benchmark defaults"))
    data_dir: Path = REPO_ROOT / "data" / "bench"
    out_dir: Path = REPO_ROOT / "benchmarks" / "reports"
    name: str | None = None           # report file stem; default: the machine kind (+ the section)
    note: str = ""                    # what changed since the last run, for the history table
    config: Path | None = None        # training YAML the sizes below are read from
    # The data the loader, step and e2e sections run on: given shards, or a synthetic default set.
    shards: Path | None = None
    videos_per_class: int = 5         # the default set has 10 classes
    video_size: tuple[int, int] = (256, 340)    # short side range of the synthetic sources
    video_frames: tuple[int, int] = (250, 300)  # frames per source video, as a 10 s Kinetics clip at 25-30 fps
    shard_codec: str = "vp9"
    shard_gop: int = 16
    shard_short_side: int = 256
    shard_fps_cap: float | None = None  # frames the decoder must walk through scale with the frame rate
    shard_samples: int = 16           # samples per tar, so the set spans several tars
    workers: int = os.cpu_count() or 1  # processes that draw and encode the default set
    cpus: int | None = None           # CPU cores the loaders may use (process affinity); None: all
    # How long each section measures.
    loader_repeats: int = 3
    loader_warmup: int = 2            # batches per repeat not timed (pipeline build, worker start, first decode)
    loader_batches: int | None = None  # timed batches per repeat; None: the rest of the epoch
    step_warmup: int = 0              # untimed steps after the first (FLOP-counting) one
    step_iters: int = 1
    step_repeats: int = 5
    e2e_steps: int = 7
    e2e_warmup: int = 1               # steps before the steady-state window (and the trainer's log interval)
    codecs: tuple[str, ...] = ("vp9", "h264", "mjpeg")
    gops: tuple[int, ...] = (1, 4, 8, 16, 32)  # bytes per clip against decode cost, to choose shard_gop from
    short_sides: tuple[int, ...] = (256, 160)
    codec_videos: int = 8
    codec_batches: int = 16           # timed batches per repeat, after one warm-up batch (the videos are reread)
    codec_repeats: int = 3
    # The video-length sweep: the default encoding (shard_codec, shard_gop, shard_short_side) of synthetic
    # videos of exactly these frame counts, through the full DALI train loader.
    lengths: tuple[int, ...] = (48, 240, 480, 960)
    length_videos: int = 8            # videos per length
    length_batches: int = 16          # timed batches per repeat, after `loader_warmup` (the videos are reread)
    build_videos: int = 8
    build_workers: tuple[int, ...] = field(default_factory=lambda: tuple(sorted({1, os.cpu_count() or 1})))
    sections: tuple[str, ...] = SECTIONS

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")

    @property
    def decode_device(self) -> str:
        """Where the DALI loader decodes: the run config's `data.decode_device`; auto: NVDEC when there is a GPU."""
        configured = self.run.data.decode_device
        return configured if configured != "auto" else ("gpu" if self.device.type == "cuda" else "cpu")

    def describe(self) -> dict:
        """Every setting; the run's shape under its flag names, and the whole training config as `run`."""
        shape = {flag: _flag_value(self.run, key) for flag, key in RUN_FLAGS.items()}
        own = {item.name: _plain(getattr(self, item.name)) for item in fields(self) if item.name != "run"}
        return {**own, **shape, "run": self.run.as_dict()}


def shown_path(path: Path | str) -> str:
    """A path as reports show it: relative to the repository when inside it (reports get committed)."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def _plain(value):
    if isinstance(value, Path):
        return shown_path(value)
    if isinstance(value, tuple):
        return list(value)
    return value


PRESETS: dict[str, dict] = {
    # Seconds on two cores: the code paths of every section at toy sizes (CI).
    "smoke": dict(videos_per_class=1, video_size=(48, 64), video_frames=(16, 24), shard_gop=8, shard_short_side=48,
                  shard_samples=4, workers=2, loader_repeats=2, loader_warmup=1,
                  run={"data.num_segments": 4, "data.input_size": 64, "network.arch": "ViT-Tiny-16",
                       "network.sim_header": "meanP"},
                  step_iters=2, step_repeats=2, e2e_steps=3, gops=(1, 8), short_sides=(48, 32), codec_videos=3,
                  codec_batches=2, codec_repeats=2, lengths=(16, 48), length_videos=3, length_batches=2,
                  build_videos=3, build_workers=(1,)),
    # A few minutes on a 2-core CPU: Kinetics-like videos, ViT-B/32 at 8 frames, batch 2.
    "cpu": dict(),
    # The target configuration on one GPU: ViT-B/32, 8 frames, bf16, batch 64, every core feeding it. Sized for
    # one 4-minute stage of gpu_run.sh: the sweeps (codecs, lengths, build) run only when asked for, and the
    # loader rows time 16 batches each (the 320 clips listed as often as that takes).
    "gpu": dict(videos_per_class=32, shard_samples=64,
                run={"data.batch_size": 64, "data.workers": min(16, os.cpu_count() or 1)},
                loader_repeats=3, loader_warmup=3, loader_batches=16, step_warmup=4, step_iters=10, step_repeats=3,
                e2e_steps=200, e2e_warmup=20, codec_videos=32, codec_batches=8, length_videos=32, build_videos=32,
                sections=SHARD_SECTIONS),
}

def resolve(preset: str, config: Path | None, flags: dict, overrides: Sequence[str] = ()) -> Settings:
    """Preset values, then the training config (when given), then every flag that is not None, then `--set`."""
    if preset not in PRESET_NAMES:
        raise ValueError(f"preset must be one of {PRESET_NAMES}, got {preset!r}")
    if preset == "auto":
        preset = "gpu" if torch.cuda.is_available() else "cpu"
    values = dict(PRESETS[preset])
    run = with_values(Settings(preset=preset).run, values.pop("run", {}), f"--preset {preset}")
    if config is not None:  # the run as the trainer would configure it, with random weights unless --pretrained
        run = with_values(load_config(config), {"network.pretrained": "none"}, "benchmark defaults")
        if run.data.train_shards and flags.get("shards") is None:
            values["shards"] = Path(run.data.train_shards)
    known = {item.name for item in fields(Settings)} - {"run"}
    unknown = set(flags) - known - set(RUN_FLAGS)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    given = {key: value for key, value in flags.items() if value is not None}
    for flag in [key for key in given if key in RUN_FLAGS]:
        value = given.pop(flag)
        run = with_values(run, {RUN_FLAGS[flag]: value}, f"--{flag.replace('_', '-')} {value}")
    run = load_config(None, overrides, base=run)
    settings = replace(Settings(preset=preset, run=run), **{**values, **given})
    check(settings)
    return settings


def check(settings: Settings) -> None:
    """Reject settings no section can run with, naming the flag."""
    positive = ("loader_repeats", "step_iters",
                "step_repeats", "e2e_steps", "e2e_warmup", "codec_videos", "codec_batches", "codec_repeats",
                "length_videos", "length_batches", "build_videos", "videos_per_class", "workers", "shard_samples")
    for name in positive:
        if getattr(settings, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(settings, name)}")
    for name in ("gops", "short_sides", "lengths"):
        values = getattr(settings, name)
        if not values or min(values) < 1:
            raise ValueError(f"--{name.replace('_', '-')} needs values >= 1, got {list(values)}")
    for name in ("loader_warmup", "step_warmup"):
        if getattr(settings, name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(settings, name)}")
    if settings.loader_batches is not None and settings.loader_batches < 1:
        raise ValueError(f"--loader-batches must be >= 1 (or left out for the whole epoch), got {settings.loader_batches}")
    bad = [section for section in settings.sections if section not in SECTIONS]
    if bad:
        raise ValueError(f"unknown section(s) {bad}; sections are {list(SECTIONS)}")
    if settings.cpus is not None and not 1 <= settings.cpus <= len(os.sched_getaffinity(0)):
        raise ValueError(f"--cpus must be in [1, {len(os.sched_getaffinity(0))}] (the cores this process may use), "
                         f"got {settings.cpus}")
    if settings.shards is not None and not Path(settings.shards).exists():
        raise ValueError(f"--shards {settings.shards} does not exist; pass a shard folder, a manifest or a .tar, "
                         "or leave it out to build the default synthetic set")
