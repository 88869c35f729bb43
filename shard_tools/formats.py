"""`build-shards --format`: the annotation formats, their command-line options, and loading a dataset."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable, NamedTuple

from shard_tools import input_charades, input_csv, input_lists, input_splits, input_ssv2, input_wds
from shard_tools.inputs import AnnotationError, VideoInput, derive_classes, read_labels_csv, split_sources


class Format(NamedTuple):
    annotations: str  # what --annotations is (the README's Inputs table says more)
    read: Callable[[argparse.Namespace], tuple[list[VideoInput], list[str] | None]]


class _CutSpans(argparse.Action):
    """--charades-spans: a span's sample is its [start, end) window, so it implies --use-time-window."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        namespace.charades_spans = namespace.use_time_window = True


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=list(FORMATS), required=True, help="annotation format of the dataset")
    parser.add_argument("--annotations", action="extend", nargs="+", metavar="PATH",
                        help="the annotation files of the format (see README, Inputs): "
                             + "; ".join(f"{name}: {entry.annotations}" for name, entry in FORMATS.items()))
    parser.add_argument("--root", type=Path,
                        help="folder the video paths are relative to (not needed when they are absolute)")
    parser.add_argument("--labels", type=Path,
                        help="class list CSV 'id,name'; without it the dataset's own list or the sorted class "
                             "names are used and written out")
    group = parser.add_argument_group("format options")
    group.add_argument("--split-id", type=int, default=1, help="official split number for ucf101/hmdb51")
    group.add_argument("--split-name", default="train",
                       help="split of folder, and of list/frames/wds --annotations given without SPLIT=")
    group.add_argument("--path-template", default=input_csv.KINETICS_TEMPLATE,
                       help="kinetics file name under --root, with {label} {youtube_id} {time_start} {time_end} "
                            "{split}")
    group.add_argument("--use-time-window", action="store_true",
                       help="kinetics: cut [time_start, time_end) out of full-length source videos")
    group.add_argument("--image-tmpl", default=input_lists.IMAGE_TEMPLATE,
                       help="frames: file name of frame N in its folder (Python format)")
    group.add_argument("--index-bias", type=int, default=1,
                       help="frames: number of a folder's first frame (original ActionCLIP and MMAction2: 1)")
    group.add_argument("--frame-fps", type=float, default=30.0, help="frames: frame rate of the frame folders")
    group.add_argument("--label-key", help="wds: where a sample's label is: txt, cls or json:FIELD")
    group.add_argument("--charades-spans", action=_CutSpans, nargs=0, default=False,
                       help="charades: one single-label sample per action span (cut out of its video) instead of "
                            "one multi-label sample per video")


def _one(args: argparse.Namespace) -> Path:
    if not args.annotations or len(args.annotations) > 1:
        given = f"got {len(args.annotations)}" if args.annotations else "none given"
        what = FORMATS[args.format].annotations
        raise AnnotationError(f"--format {args.format} takes one --annotations ({what}); {given}")
    return Path(args.annotations[0])


def _sources(args: argparse.Namespace) -> list[tuple[str, str]]:
    if not args.annotations:
        raise AnnotationError(f"--format {args.format} needs --annotations ({FORMATS[args.format].annotations})")
    return split_sources(args.annotations, args.split_name)


def _lists(args: argparse.Namespace) -> list[tuple[str, Path]]:
    return [(split, Path(file)) for split, file in _sources(args)]


def _frames(args: argparse.Namespace) -> list[VideoInput]:
    if args.frame_fps <= 0 or args.index_bias < 0:
        raise AnnotationError(f"--frame-fps must be > 0 and --index-bias >= 0 (got {args.frame_fps:g}, "
                              f"{args.index_bias})")
    return input_lists.read_frame_list(_lists(args), args.root, args.image_tmpl, args.index_bias, args.frame_fps)


def _wds(args: argparse.Namespace) -> list[VideoInput]:
    if not args.label_key:
        raise AnnotationError("--format wds needs --label-key: where each sample's label is (txt, cls or json:FIELD)")
    return input_wds.read_wds(_sources(args), args.label_key)


FORMATS: dict[str, Format] = {
    "kinetics": Format("a CSV label,youtube_id,time_start,time_end,split",
                       lambda args: (input_csv.read_kinetics(_one(args), args.root, args.path_template), None)),
    "ucf101": Format("the folder of classInd.txt, trainlistNN.txt, testlistNN.txt",
                     lambda args: input_splits.read_ucf101(_one(args), args.root, args.split_id)),
    "hmdb51": Format("the folder of <class>_test_splitN.txt",
                     lambda args: input_splits.read_hmdb51(_one(args), args.root, args.split_id)),
    "csv": Format("a CSV path,label[,split]",
                  lambda args: (input_csv.read_generic_csv(_one(args), args.root), None)),
    "folder": Format("nothing: the videos are --root/<class>/<video>",
                     lambda args: (input_splits.read_folder(args.root, args.split_name), None)),
    "list": Format("'path label' lists: FILE (split --split-name) or SPLIT=FILE, repeatable",
                   lambda args: (input_lists.read_video_list(_lists(args), args.root), None)),
    "frames": Format("'folder num_frames label' lists: FILE (split --split-name) or SPLIT=FILE, repeatable",
                     lambda args: (_frames(args), None)),
    "ssv2": Format("the folder of labels.json, train.json, validation.json",
                   lambda args: input_ssv2.read_ssv2(_one(args), args.root)),
    "charades": Format(f"the folder of {', '.join(input_charades.SPLITS.values())}, {input_charades.CLASSES_FILE}",
                       lambda args: input_charades.read_charades(_one(args), args.root, args.charades_spans)),
    "wds": Format("tars, folders of tars or globs: PATH (split --split-name) or SPLIT=PATH, repeatable",
                  lambda args: (_wds(args), None)),
}


def load_dataset(args: argparse.Namespace) -> tuple[list[VideoInput], list[str], bool]:
    """Inputs and class list; the flag says whether the class list was not given by --labels (and must be
    written out)."""
    inputs, official_classes = FORMATS[args.format].read(args)
    if args.labels is not None:
        return inputs, read_labels_csv(args.labels), False
    return inputs, official_classes or derive_classes(inputs), True

