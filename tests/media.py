"""Small videos made by the tests themselves (PyAV), with frame content that encodes the frame index."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def frame_image(index: int, width: int, height: int) -> np.ndarray:
    """A frame whose brightness ramps with its index and whose bar moves right, so order is visible."""
    image = np.full((height, width, 3), (index * 9) % 200 + 20, dtype=np.uint8)
    bar = (index * 3) % max(width - 6, 1)
    image[:, bar:bar + 6] = (255, 40, 40)
    return image


def write_video(path: Path, video_frames: int, width: int = 96, height: int = 64, fps: int = 25,
                codec: str = "libx264", pix_fmt: str = "yuv420p", audio: bool = False, gop: int | None = None,
                options: dict[str, str] | None = None) -> Path:
    """Encode `video_frames` frames of `frame_image` (keyframe every `gop`, encoder `options`); optionally with
    an AAC audio track."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if gop is not None:
            stream.codec_context.gop_size = gop
        sound = container.add_stream("aac", rate=16000) if audio else None
        for index in range(video_frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame_image(index, width, height), format="rgb24")))
            if sound is not None:
                chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 16000, index * 1024
                container.mux(sound.encode(chunk))
        container.mux(stream.encode(None))
        if sound is not None:
            container.mux(sound.encode(None))
    return path


def decoded_frames(path_or_bytes) -> list[np.ndarray]:
    """Every frame of a video file or in-memory video, as RGB arrays (PyAV)."""
    import io

    source = io.BytesIO(path_or_bytes) if isinstance(path_or_bytes, (bytes, bytearray)) else str(path_or_bytes)
    with av.open(source) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> Path:
    """A CSV with `header` and `rows`, as the annotation and label files build-shards reads."""
    import csv

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def tar_samples(tar_path: Path) -> dict[str, dict[str, bytes]]:
    """Key -> {component: bytes} of every sample of a shard tar, in tar order."""
    import tarfile

    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(tar_path) as archive:
        for member in archive:
            key, _, component = member.name.partition(".")
            samples.setdefault(key, {})[component] = archive.extractfile(member).read()
    return samples


def largest_packet(video: bytes) -> tuple[int, int]:
    """(offset, size) in `video` of its largest compressed video packet (a keyframe's picture data)."""
    import io

    with av.open(io.BytesIO(video)) as container:
        packets = [(packet.size, packet.pos) for packet in container.demux(video=0) if packet.size]
    size, offset = max(packets)
    return offset, size


def error_line(status: int, capsys) -> str:
    """The one `error: ...` line of a refused shard_tools command: exit status 2, no traceback."""
    err = capsys.readouterr().err
    assert status == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]


def write_frames(folder: Path, count: int, width: int = 96, height: int = 64, template: str = "img_{:05d}.jpg",
                 start: int = 1) -> Path:
    """A rawframes folder: `count` JPEGs of `frame_image` named `template.format(start)`, ... (PyAV's mjpeg)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        with av.open(str(folder / template.format(start + index)), "w", format="image2",
                     options={"update": "1"}) as container:
            stream = container.add_stream("mjpeg", rate=1)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuvj420p"
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame_image(index, width, height), format="rgb24")))
            container.mux(stream.encode(None))
    return folder


def write_tar(path: Path, samples: dict[str, dict[str, bytes]]) -> Path:
    """A webdataset tar of `{key: {extension: bytes}}`, members `<key>.<extension>` in that order."""
    import io
    import tarfile

    with tarfile.open(path, "w") as archive:
        for key, members in samples.items():
            for extension, data in members.items():
                info = tarfile.TarInfo(f"{key}.{extension}")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return path
