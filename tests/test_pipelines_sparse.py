"""Sparse decoding: only the GOPs that hold a clip's frames are decoded, and the frames are the same."""
from __future__ import annotations

import logging

import av
import numpy as np
import pytest
import torch

from media import decoded_frames, write_video
from pipelines import build_loader
from pipelines import sparse as sparse_module
from pipelines.dali_loader import DaliVideoLoader
from pipelines.sparse import count_packets, select_gops
from pipelines_fixtures import ramp_shards

VIDEO_FRAMES = 45
X264 = "keyint=8:min-keyint=8:scenecut=0:bframes=3:open-gop={open}"
X265 = "keyint=8:min-keyint=8:scenecut=0:bframes=3:open-gop=0:log-level=none"
# (codec, pixel format, encoder options): inter codecs with a closed GOP of 8 (B-frames for H.264/HEVC).
CLOSED = {
    "vp9": ("libvpx-vp9", "yuv420p", {"auto-alt-ref": "0", "lag-in-frames": "0", "deadline": "realtime"}),
    "h264": ("libx264", "yuv420p", {"x264-params": X264.format(open=0)}),
    "hevc": ("libx265", "yuv420p", {"x265-params": X265}),
    "mjpeg": ("mjpeg", "yuvj420p", {}),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("sparse")
    made = {name: write_video(folder / f"{name}.mp4", VIDEO_FRAMES, codec=codec, pix_fmt=pix_fmt, gop=8,
                              options=options).read_bytes()
            for name, (codec, pix_fmt, options) in CLOSED.items()}
    made["h264-open"] = write_video(folder / "open.mp4", VIDEO_FRAMES, gop=8,
                                    options={"x264-params": X264.format(open=1)}).read_bytes()
    return made


def clips(seed: int = 0):
    """Index sets: TSN-like, repeats and out-of-order, past the end, a single frame, the last frame."""
    rng = np.random.default_rng(seed)
    yield np.sort(rng.integers(0, VIDEO_FRAMES, 8))
    yield np.array([30, 3, 3, 17, 30])
    for _ in range(6):  # sorted with repeats, as short videos give: several GOPs copied twice in a row
        yield np.sort(rng.integers(0, VIDEO_FRAMES, 8))[[0, 1, 1, 2, 3, 4, 4, 5]]
    yield np.array([0, VIDEO_FRAMES + 5])
    yield np.array([VIDEO_FRAMES // 2])
    yield np.array([VIDEO_FRAMES - 1])


@pytest.mark.parametrize("codec", list(CLOSED))
def test_sparse_clip_decodes_to_the_same_frames_and_fewer(videos, codec):
    data = videos[codec]
    dense = decoded_frames(data)
    assert len(dense) == count_packets(data) == VIDEO_FRAMES
    for indices in clips():
        selected = select_gops(data, indices)
        frames = decoded_frames(selected.data)
        assert selected.sparse and len(set(selected.indices.tolist())) == len(indices)  # no frame asked twice
        assert selected.decoded_frames == int(selected.indices.max()) + 1 <= len(frames)
        for index, remapped in zip(indices, selected.indices):
            assert np.array_equal(frames[remapped], dense[min(index, VIDEO_FRAMES - 1)]), (codec, indices)
    # One frame in the middle: at most its GOP's frames, never the frames before that GOP.
    assert select_gops(data, [VIDEO_FRAMES // 2]).decoded_frames <= (1 if codec == "mjpeg" else 8)


def test_open_gops_fall_back_to_the_whole_video(videos):
    data = videos["h264-open"]
    selected = select_gops(data, [5, 20, 40])
    assert not selected.sparse and selected.data == data and selected.indices.tolist() == [5, 20, 40]
    assert selected.decoded_frames == 41


def test_bytes_that_are_no_video_are_an_error():
    with pytest.raises(av.error.FFmpegError):
        select_gops(b"not a video at all", [0])


SMALL = dict(batch_size=3, num_frames=6, image_size=32, workers=2)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return ramp_shards(tmp_path_factory.getbasetemp() / "pipelines")


@pytest.mark.parametrize("mode", ["train", "val"])
def test_dali_sparse_and_dense_loaders_give_identical_batches(shards, mode):
    """Same decoder on the same frames: bit-exact, with fewer frames decoded per clip."""
    common = dict(split="train", seed=3, epoch=1, **SMALL)
    sparse = build_loader(shards, mode, sparse_decode=True, **common)
    dense = build_loader(shards, mode, sparse_decode=False, **common)
    sparse_batches, dense_batches = list(sparse), list(dense)
    assert len(sparse_batches) == len(dense_batches) == len(sparse) > 0
    for ours, theirs in zip(sparse_batches, dense_batches):
        assert ours.keys() == theirs.keys()
        for name in ours:
            assert torch.equal(ours[name], theirs[name]), name
    assert sparse.decode_stats["clips"] == dense.decode_stats["clips"] == len(sparse) * SMALL["batch_size"]
    assert sparse.decode_stats["dense_clips"] == 0
    assert sparse.decode_stats["frames_decoded_per_clip"] < dense.decode_stats["frames_decoded_per_clip"]


def test_spawned_source_workers_read_what_forked_ones_do(shards):
    """The source travels to spawned workers by pickle (the start method once CUDA is initialised)."""
    common = dict(split="val", **SMALL)
    forked = build_loader(shards, "val", **common)
    spawned_loader = DaliVideoLoader(forked.shards, forked.spec, batch_size=3, num_threads=2, start_method="spawn")
    for ours, theirs in zip(forked, spawned_loader, strict=True):
        assert torch.equal(ours["video"], theirs["video"]) and torch.equal(ours["video_id"], theirs["video_id"])


def test_irregular_gops_decode_densely_and_say_so_once(shards, monkeypatch, caplog):
    """Streams whose GOPs cannot be cut are decoded whole: same frames, one warning per loader."""
    reference = list(build_loader(shards, "val", split="val", **SMALL))

    def refuse(packets):
        raise sparse_module.IrregularGops("test: pretend the GOPs are open")

    monkeypatch.setattr(sparse_module, "_closed_gops", refuse)  # forked source workers inherit it
    loader = build_loader(shards, "val", split="val", **SMALL)
    with caplog.at_level(logging.WARNING, logger="pipelines.dali_loader"):
        for _ in range(2):
            fallback = list(loader)
    assert loader.decode_stats["dense_clips"] == loader.decode_stats["clips"] > 0
    assert len([r for r in caplog.records if "decoded from the start" in r.getMessage()]) == 1
    for ours, theirs in zip(fallback, reference, strict=True):
        assert torch.equal(ours["video"], theirs["video"])

