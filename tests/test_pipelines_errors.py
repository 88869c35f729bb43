"""Bad input fails early with the file, the sample and the fix, not deep inside DALI."""
from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest
import torch
from wds2idx import IndexCreator

from pipelines import CorruptSampleError, LoaderSetupError, ShardError, build_loader, open_shards
from pipelines_fixtures import ramp_shards

SMALL = dict(batch_size=2, num_frames=4, image_size=32)


@pytest.fixture(scope="session")
def shards(tmp_path_factory):
    return ramp_shards(tmp_path_factory.getbasetemp() / "pipelines")


def test_missing_path_and_empty_list(tmp_path):
    with pytest.raises(ShardError, match="does-not-exist.*does not exist"):
        build_loader(tmp_path / "does-not-exist", "val", **SMALL)
    with pytest.raises(ShardError, match="empty"):
        build_loader([], "val", **SMALL)
    with pytest.raises(ShardError, match="holds no manifest"):
        build_loader(tmp_path, "val", **SMALL)


def test_folder_with_several_manifests_needs_a_split(shards):
    with pytest.raises(ShardError, match="several manifests"):
        open_shards(shards)
    assert open_shards(shards, split="val").num_samples == 7
    assert open_shards(shards / "synth-train.manifest.json").classes == ("ramp_a", "ramp_b", "ramp_c")


def test_tar_without_index_says_how_to_build_it(shards, tmp_path):
    tar = Path(shutil.copy(shards / "synth-val-000000.tar", tmp_path))
    with pytest.raises(ShardError, match=r"synth-val-000000\.tar has no DALI index.*build-shards.*wds2idx"):
        build_loader([tar], "val", **SMALL)


def test_sample_without_info_component_is_named(shards, tmp_path):
    tar = tmp_path / "partial.tar"
    with tarfile.open(shards / "synth-val-000000.tar") as source, tarfile.open(tar, "w") as target:
        for member in source.getmembers():
            if not (member.name.startswith("synthval000000002.") and member.name.endswith(".info")):
                target.addfile(member, io.BytesIO(source.extractfile(member).read()))
    IndexCreator(str(tar), str(tar.with_suffix(".idx")), verbose=False).create_index()
    with pytest.raises(ShardError, match=r"partial\.tar: sample 'synthval000000002' has no \.info component"):
        build_loader([tar], "val", **SMALL)


def corrupt_copy(shards: Path, destination: Path, sample: int, whole_file: bool) -> tuple[Path, str]:
    """Copy the val shards and damage one .mp4 in place (size kept, so the index stays valid)."""
    shutil.copytree(shards, destination)
    tar = destination / "synth-val-000000.tar"
    fields = (destination / "synth-val-000000.idx").read_text().splitlines()[1 + sample].split()
    offset, size, key = int(fields[1]), int(fields[2]), fields[3].split(".")[0]
    data = bytearray(tar.read_bytes()[offset:offset + size])
    start = 0 if whole_file else (data.find(b"mdat") + data.find(b"moov")) // 2
    end = size if whole_file else start + 512
    data[start:end] = bytes(end - start) if whole_file else bytes(range(256)) * 2
    with open(tar, "r+b") as handle:
        handle.seek(offset)
        handle.write(bytes(data))
    return tar, key


@pytest.mark.parametrize("whole_file", [True, False], ids=["unreadable-container", "broken-stream"])
@pytest.mark.parametrize("mode", ["val", "train"])
def test_corrupt_sample_is_named_with_its_shard(shards, tmp_path, whole_file, mode):
    tar, key = corrupt_copy(shards, tmp_path / "shards", sample=1, whole_file=whole_file)
    loader = build_loader(tmp_path / "shards", mode, split="val", **SMALL)
    with pytest.raises(CorruptSampleError) as caught:
        for epoch in range(3):  # a training epoch skips the samples that do not fill a batch, others do not
            loader.set_epoch(epoch)
            list(loader)
    message = str(caught.value)
    assert repr(key) in message and str(tar) in message and "shard_tools verify" in message


def test_baseline_names_corrupt_sample_too(shards, tmp_path):
    tar, key = corrupt_copy(shards, tmp_path / "shards", sample=2, whole_file=False)
    loader = build_loader(tmp_path / "shards", "val", split="val", backend="baseline", workers=0, **SMALL)
    with pytest.raises(CorruptSampleError, match=f"'{key}' in shard {tar}"):
        list(loader)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_nvdec_only_codecs_need_gpu_decoding_and_say_so_at_start(tmp_path_factory, codec):
    shards = ramp_shards(tmp_path_factory.getbasetemp() / "pipelines", codec=codec)
    with pytest.raises(ShardError, match=f"{codec}.*only on a GPU.*Re-shard as VP9"):
        build_loader(shards, "val", split="val", decode_device="cpu", **SMALL)
    if torch.cuda.is_available():  # auto and gpu pick NVDEC, which decodes H.264 and HEVC
        batch = next(iter(build_loader(shards, "val", split="val", decode_device="auto", **SMALL)))
        assert batch["video"].is_cuda and batch["video"].shape == (2, 4, 3, 32, 32)
    else:
        with pytest.raises(ShardError, match=f"{codec}.*only on a GPU"):
            build_loader(shards, "val", split="val", decode_device="auto", **SMALL)
        with pytest.raises(LoaderSetupError, match="decode_device='gpu' but CUDA is not available"):
            build_loader(shards, "val", split="val", decode_device="gpu", **SMALL)
    # Without a manifest the codec is read from the first video.
    with pytest.raises(ShardError, match=f"{codec}.*only on a GPU"):
        build_loader(sorted(shards.glob("synth-val-*.tar")), "val", decode_device="cpu", **SMALL)
    # The PyAV baseline decodes them on the CPU.
    batch = next(iter(build_loader(shards, "val", split="val", backend="baseline", workers=0, **SMALL)))
    assert batch["video"].shape == (2, 4, 3, 32, 32)
