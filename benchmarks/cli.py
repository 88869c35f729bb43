"""`python -m benchmarks {report,loader,step,e2e,codecs,lengths,build,data}`: measure, then write the report.

Every subcommand takes the same options; `report` runs all sections, the others one each, and `data`
only makes (or finds in the cache) the shards the loader, step and e2e sections read. Sizes come
from `--preset` (auto: gpu when CUDA is available, else cpu), then `--config` (a training YAML), then
the flags. A failing section is recorded in the report with its reason and makes the exit status 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Callable, Sequence

from rich.console import Console

from actionclip import SIM_HEADERS
from pipelines.batch import PRECISION_DTYPES
from pipelines.errors import LoaderSetupError, ShardError
from shard_tools.encode import ENCODERS

from benchmarks import build, codecs, e2e, lengths, loader, step
from benchmarks import report as reports
from benchmarks.data import BenchmarkError, default_shards, default_sources
from benchmarks.machine import describe_machine, machine_slug
from benchmarks.settings import PRESET_NAMES, PRESETS, SECTIONS, SHARD_SECTIONS, Settings, resolve, shown_path

COMMANDS = ("report", *SECTIONS, "data")
SHARD_CODECS = tuple(sorted(ENCODERS))  # what shard_tools build-shards --codec writes
console = Console(stderr=True)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure where training time goes (loader, model step, end to end, codecs, video lengths, "
                    "shard build) and write a Markdown + JSON report (and a PNG with matplotlib) under "
                    "benchmarks/reports/.")
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {"report": "every section, one report",
             "loader": "DALI (sparse and dense decoding) vs baseline loader clips/s",
             "step": "model training step on resident tensors: clips/s, FLOPs, MFU",
             "e2e": "the real training loop for N steps",
             "codecs": "codec x GOP x short side sweep: bytes, decode cost against the needed-GOPs limit and peers",
             "lengths": "video-length sweep: DALI loader cost per clip, sparse vs dense decoding",
             "build": "shard_tools build throughput",
             "data": "make the shards the loader, step and e2e sections read (or find them cached); print their folder"}
    for command in COMMANDS:
        add_options(commands.add_parser(command, help=helps[command], description=helps[command]))
    return root


def add_options(parser: argparse.ArgumentParser) -> None:
    """Flags default to None so that the preset and the training config fill what is not given."""
    run = parser.add_argument_group("run")
    run.add_argument("--preset", choices=PRESET_NAMES, default="auto", help="sizes to start from (default: auto)")
    run.add_argument("--config", type=Path, help="training YAML the run's shape is read from (data, network, "
                                                 "deepspeed sections; data.train_shards as --shards)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="set a training-config key, as launch.py --set does (e.g. --set data.sparse_decode=false)")
    run.add_argument("--shards", type=Path, help="shard folder/manifest/tar; default: build the synthetic set")
    run.add_argument("--data-dir", type=Path, help="cache of generated videos and shards (default: data/bench)")
    run.add_argument("--out-dir", type=Path, help="report folder (default: benchmarks/reports)")
    run.add_argument("--name", help="report file name (default: the machine kind, plus the sections when not all "
                                    "the preset's)")
    run.add_argument("--note", help="what changed since the previous run (shown in the history table)")
    run.add_argument("--sections", nargs="+", choices=SECTIONS,
                     help="report: run only these sections (default: all; with the gpu preset: loader step e2e)")
    run.add_argument("--seed", type=int)
    run.add_argument("--workers", type=int, help="processes that draw and encode the generated data")
    data = parser.add_argument_group("generated data (when --shards is not given)")
    data.add_argument("--videos-per-class", type=int, help="synthetic videos per class (10 classes)")
    data.add_argument("--video-size", type=int, nargs=2, metavar=("MIN", "MAX"), help="source short side, px")
    data.add_argument("--video-frames", type=int, nargs=2, metavar=("MIN", "MAX"), help="source frames per video")
    data.add_argument("--shard-codec", choices=SHARD_CODECS)
    data.add_argument("--shard-gop", type=int)
    data.add_argument("--shard-short-side", type=int)
    data.add_argument("--shard-samples", type=int, help="samples per tar")
    data.add_argument("--shard-fps-cap", type=float, help="frame-rate cap of the default set's shards")
    clip = parser.add_argument_group("what a training step sees (training-config keys: data.*, network.*, "
                                     "deepspeed.precision)")
    clip.add_argument("--batch-size", type=int)
    clip.add_argument("--num-frames", "--frames", type=int, dest="num_frames")
    clip.add_argument("--input-size", type=int)
    clip.add_argument("--threads", type=int, help="DALI threads = baseline DataLoader workers")
    clip.add_argument("--prefetch", type=int)
    clip.add_argument("--cpus", type=int, help="cores the loaders may use (CPU affinity; default: all)")
    clip.add_argument("--arch", help="open_clip model name or config JSON")
    clip.add_argument("--pretrained", help="weights; default none (random: throughput does not depend on them)")
    clip.add_argument("--sim-header", choices=SIM_HEADERS)
    clip.add_argument("--precision", choices=tuple(PRECISION_DTYPES))
    sizes = parser.add_argument_group("how long each section measures")
    for option in ("loader-repeats", "loader-warmup", "loader-batches", "step-warmup", "step-iters", "step-repeats",
                   "e2e-steps", "e2e-warmup", "codec-videos", "codec-batches", "codec-repeats", "length-videos",
                   "length-batches", "build-videos"):
        sizes.add_argument(f"--{option}", type=int)
    sizes.add_argument("--codecs", nargs="+", choices=SHARD_CODECS, help="codecs of the codec sweep (default: vp9 h264 mjpeg)")
    sizes.add_argument("--gops", nargs="+", type=int)
    sizes.add_argument("--short-sides", nargs="+", type=int)
    sizes.add_argument("--lengths", nargs="+", type=int, help="frames per video of the video-length sweep")
    sizes.add_argument("--build-workers", nargs="+", type=int)


def settings_from(args: argparse.Namespace) -> Settings:
    skip = {"command", "preset", "config", "sections", "overrides"}
    flags = {key: tuple(value) if isinstance(value, list) else value
             for key, value in vars(args).items() if key not in skip}
    # report: the preset's sections (all but gpu's); data: none runs, but the shards they read are made.
    sections = {"report": None, "data": SHARD_SECTIONS}.get(args.command, (args.command,))
    if args.sections:
        if args.command != "report":
            raise ValueError("--sections goes with the report command")
        sections = tuple(section for section in SECTIONS if section in args.sections)
    return resolve(args.preset, args.config, {**flags, "sections": sections}, args.overrides)


def report_name(settings: Settings, machine: dict) -> str:
    """--name, else the machine kind plus the sections run when they are fewer than the preset's report: a
    partial run keeps its own file and history, and leaves the machine's whole report as it was."""
    if settings.name:
        return settings.name
    whole = tuple(PRESETS[settings.preset].get("sections", SECTIONS))
    return machine_slug(machine) + ("" if settings.sections == whole else "-" + "-".join(settings.sections))


class Inputs:
    """The shards and source videos the chosen sections need, made (or found in the cache) before timing."""

    def __init__(self, settings: Settings) -> None:
        self.data: dict = {}
        self.shards: Path | None = None
        self.sources = None
        if set(SHARD_SECTIONS) & set(settings.sections):
            self.shards, self.data = default_shards(settings)
        if {"codecs", "build"} & set(settings.sections):
            self.sources, seconds = default_sources(settings)
            self.data["codec_and_build_sources"] = shown_path(self.sources.root)
            if seconds is not None:
                self.data["sources_synth_seconds"] = seconds

    def class_names(self) -> list[str]:
        from pipelines import open_shards

        classes = open_shards(self.shards).classes
        return list(classes) if classes else [f"action {number}" for number in range(10)]


def section_runners(inputs: Inputs) -> dict[str, Callable[[Settings], dict]]:
    return {"loader": lambda s: loader.run(s, inputs.shards),
            "step": lambda s: step.run(s, inputs.shards, inputs.class_names()),
            "e2e": lambda s: e2e.run(s, inputs.shards),
            "codecs": lambda s: codecs.run(s, inputs.sources),
            "lengths": lengths.run,
            "build": lambda s: build.run(s, inputs.sources)}


def run_section(name: str, runner: Callable[[Settings], dict], settings: Settings) -> dict:
    console.rule(f"[bold]{name}")
    started = time.perf_counter()
    try:
        result = runner(settings)
    except (BenchmarkError, ShardError, LoaderSetupError) as error:  # the user's settings, named with the fix
        console.print(f"[red]{name}: {error}")
        result = {"status": "error", "error": str(error)}
    except Exception as error:  # a broken section must not lose the others' results
        console.print(traceback.format_exc())
        result = {"status": "error", "error": f"{type(error).__name__}: {error}"}
    result["seconds"] = time.perf_counter() - started
    # Other processes on the machine skew every number: keep the 1-minute load average next to them.
    result["load_average"] = os.getloadavg()[0]
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as error:
        console.print(f"[red]benchmarks: {error}")
        return 2
    machine = describe_machine()
    console.rule("[bold]data")
    try:
        inputs = Inputs(settings)
    except BenchmarkError as error:
        console.print(f"[red]benchmarks: {error}")
        return 1
    if args.command == "data":
        print(inputs.shards)
        return 0
    runners = section_runners(inputs)
    sections = {name: run_section(name, runners[name], settings) for name in settings.sections}
    name = report_name(settings, machine)
    command = ["python -m benchmarks", *(sys.argv[1:] if argv is None else argv)]
    report = reports.assemble(name, settings.note, command, machine, settings.describe(), inputs.data, sections)
    paths = reports.write(report, settings.out_dir)
    # A pipe or log file gets wide tables instead of rich's 80-column default.
    reports.print_console(report, paths, Console() if sys.stdout.isatty() else Console(width=150))
    return 0 if all(section["status"] == "ok" for section in sections.values()) else 1
