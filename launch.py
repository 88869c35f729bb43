"""ActionCLIP trainer entry point.

    deepspeed launch.py --config configs/k400.yaml                      # train on every GPU (or --num_gpus N CPU ranks)
    python launch.py --config configs/demo.yaml                          # one process, no launcher needed
    python launch.py test --config X.yaml --checkpoint runs/x/checkpoints/best.pt --set test.num_clips=4
    python launch.py zero-shot --config configs/ucf101/zero_shot_from_k400.yaml
    python launch.py zero-shot --config configs/ucf101/zero_shot_splits.yaml      # test.shards: splits 1-3, class draws
    python launch.py base-to-novel --config configs/ucf101/base_to_novel.yaml
    python launch.py predict --checkpoint best.pt --labels labels.csv video.mp4 ...
    python launch.py predict --checkpoint best.pt --classes "juggling,archery" --views 3x3 video.mp4
    python launch.py convert-config original_actionclip.yaml -o configs/mine.yaml
    python launch.py export --checkpoint best.pt --format open_clip exported/towers.safetensors
"""
from __future__ import annotations

import argparse
import json
import sys

EVALUATION_MODES = ("test", "zero-shot", "base-to-novel")
MODES = ("train", *EVALUATION_MODES, "predict", "convert-config", "export")


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train and evaluate ActionCLIP with DALI data loading and DeepSpeed.",
        epilog="modes: train (default) | test (single/multi-view: test.num_clips x test.num_crops) | "
               "zero-shot (evaluate on another label set: test.shards, one or a list, + test.labels; "
               "test.class_draws) | base-to-novel (base classes vs novel classes: data.base_classes) | "
               "predict (top-5 labels for video files: --classes, --views CLIPSxCROPS) | "
               "convert-config (an original ActionCLIP YAML -> this trainer's run config, -o OUT) | "
               "export (a checkpoint as --format original (ActionCLIP) or open_clip (towers + model JSON) OUT)")
    parser.add_argument("mode", nargs="?", choices=MODES, default="train", help="what to run (default: train)")
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="predict: video files; convert-config: the original YAML; export: the output file")
    parser.add_argument("--config", help="YAML run config (configs/*.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set solver.lr=1e-5 (repeatable)")
    parser.add_argument("--resume", help="train: 'auto' (latest checkpoint of the experiment) or a checkpoint path")
    parser.add_argument("--checkpoint", help="test/zero-shot/predict/export: consolidated (best.pt, last.pt) or "
                                             "original ActionCLIP checkpoint; default test.checkpoint")
    parser.add_argument("--labels", help="predict: class list CSV (id,name); default: the checkpoint's classes")
    parser.add_argument("--classes", help="predict: class names separated by commas, instead of --labels")
    parser.add_argument("--views", default="1x1", metavar="CLIPSxCROPS",
                        help="predict: clips in time x crops (1 or 3) per video, scores averaged as in test mode "
                             "(default 1x1: the centre view)")
    parser.add_argument("--format", dest="export_format", metavar="FORMAT",
                        help="export: original (ActionCLIP checkpoint layout) or open_clip (.safetensors/.pt/.bin + "
                             "model .json)")
    parser.add_argument("-o", "--output", help="convert-config: the run config to write (default "
                                               "./<name>.converted.yaml)")
    parser.add_argument("--max-steps", type=int, help="train: stop after this many steps (smoke runs, benchmarks)")
    parser.add_argument("--trust-checkpoint", action="store_true",
                        help="train --resume: also read DeepSpeed files that hold arbitrary pickled objects (they can "
                             "run code; only for files you made with an older version)")
    parser.add_argument("--overwrite", action="store_true",
                        help="train: start over in an experiment folder that holds an earlier run's checkpoints; "
                             "convert-config / export: replace existing output files")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an input error too")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_intermixed_args(argv)


def rounded(value):
    """`value` with every float rounded to 3 decimals, nested dicts included (the run summary as printed)."""
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    return round(value, 3) if isinstance(value, float) else value


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    from pipelines import CorruptSampleError, LoaderSetupError, ShardError
    from training.config import ConfigError, load_config
    from training.engine import init_distributed

    try:
        if args.mode in ("train", *EVALUATION_MODES) and not args.config:
            raise ConfigError(f"{args.mode} needs --config X.yaml")
        if args.mode == "predict" and not (args.checkpoint and args.paths):
            raise ConfigError("predict needs --checkpoint C and at least one video file")
        if args.mode == "convert-config":
            if len(args.paths) != 1:
                raise ConfigError("convert-config needs one original ActionCLIP YAML: launch.py convert-config "
                                  "original.yaml [-o out.yaml]")
            from training.convert_config import convert_file

            convert_file(args.paths[0], args.output, args.overwrite)
            return 0
        config = load_config(args.config, args.overrides)
        if args.mode == "export":
            if not args.checkpoint or len(args.paths) != 1:
                raise ConfigError("export needs --checkpoint C, --format and one output file: launch.py export "
                                  "--checkpoint best.pt --format open_clip towers.safetensors")
            from training.export import export

            export(config, args.checkpoint, args.export_format, args.paths[0], args.overwrite)
            return 0
        dist = init_distributed(args.local_rank, config.deepspeed.timeout_minutes)
        if args.mode == "train":
            from training.train import train

            summary = train(config, dist, resume=args.resume, max_steps=args.max_steps,
                            trust_checkpoint=args.trust_checkpoint, overwrite=args.overwrite)
            if dist.is_main:
                from training.logs import console

                console.print(f"[bold]done[/]: {json.dumps(rounded(summary))}")
                console.print(f"experiment folder: {summary['exp_dir']}  (config.yaml, metrics.jsonl, "
                              f"tensorboard/, csv/, checkpoints/best.pt, checkpoints/last.pt)")
        elif args.mode in EVALUATION_MODES:
            from training.test import run_test

            run_test(config, dist, mode=args.mode, checkpoint_path=args.checkpoint or config.test.checkpoint)
        else:
            from training.predict import predict

            predict(config, dist, args.checkpoint, args.labels, args.paths, class_list=args.classes, views=args.views)
    except (ConfigError, ShardError, CorruptSampleError, LoaderSetupError) as error:  # the user's to fix
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
