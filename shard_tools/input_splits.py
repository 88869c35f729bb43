"""Class-folder datasets: the official UCF101 and HMDB51 split lists, and plain `<class>/<video>` trees."""
from __future__ import annotations

from pathlib import Path

from shard_tools.inputs import VIDEO_SUFFIXES, AnnotationError, VideoInput, resolve, text_lines


def read_ucf101(split_dir: Path, root: Path | None, split_id: int) -> tuple[list[VideoInput], list[str]]:
    """`classInd.txt` (`N ClassName`), `trainlistNN.txt` (`Class/v_Class_gXX_cYY.avi N`), `testlistNN.txt`."""
    class_file = split_dir / "classInd.txt"
    if not class_file.exists():
        raise AnnotationError(f"{class_file} not found: --annotations must be the folder of the official split lists")
    classes = [line.split()[-1] for _, line in text_lines(class_file)]
    inputs = []
    for split, list_name in (("train", f"trainlist{split_id:02d}.txt"), ("test", f"testlist{split_id:02d}.txt")):
        list_file = split_dir / list_name
        if not list_file.exists():
            raise AnnotationError(f"{list_file} not found (UCF101 split {split_id})")
        for number, line in text_lines(list_file):
            where, relative = f"{list_file}: line {number}", line.split()[0]
            inputs.append(VideoInput(resolve(root, relative, where), relative.split("/")[0], split,
                                     Path(relative).stem, origin=where))
    return inputs, classes


def read_hmdb51(split_dir: Path, root: Path | None, split_id: int) -> tuple[list[VideoInput], list[str]]:
    """`<class>_test_splitN.txt` lines `video.avi U`: U = 1 train, 2 test, 0 unused; videos `<class>/<video>`."""
    split_files = sorted(split_dir.glob(f"*_test_split{split_id}.txt"))
    if not split_files:
        raise AnnotationError(f"no '*_test_split{split_id}.txt' files in {split_dir} (HMDB51 split lists)")
    usage = {"1": "train", "2": "test"}
    inputs, classes = [], []
    for split_file in split_files:
        class_name = split_file.name[: -len(f"_test_split{split_id}.txt")]
        classes.append(class_name)
        for number, line in text_lines(split_file):
            parts, where = line.split(), f"{split_file}: line {number}"
            if len(parts) == 2 and parts[1] in usage:
                inputs.append(VideoInput(resolve(root, f"{class_name}/{parts[0]}", where), class_name,
                                         usage[parts[1]], Path(parts[0]).stem, origin=where))
    return inputs, classes


def read_folder(root: Path | None, split: str) -> list[VideoInput]:
    """Every video of `root/<class>/`, in split `split`."""
    if root is None or not root.is_dir():
        raise AnnotationError(f"--format folder: --root {root} is not a folder of class folders")
    return [
        VideoInput(str(path), class_dir.name, split, path.stem, origin=str(class_dir))
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir())
        for path in sorted(class_dir.iterdir())
        if path.suffix.lower() in VIDEO_SUFFIXES
    ]
