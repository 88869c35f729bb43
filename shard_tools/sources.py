"""Where a video's frames come from: a video file, a video stored in a tar (webdataset input), or a folder of
numbered images (rawframes). `open_frames` opens any of them as one stream of decoded frames for `encode`."""
from __future__ import annotations

import io
import os
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, Union

import av


class VideoRejected(Exception):
    """A source video that cannot go into a shard; `reason` is a short machine-friendly tag."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class TarMember:
    """A video file inside an uncompressed tar, read by its data offset when it is encoded."""
    tar: str
    member: str
    offset: int
    size: int

    def __str__(self) -> str:
        return f"{self.tar}:{self.member}"


@dataclass(frozen=True)
class FrameFolder:
    """`count` images `template.format(start)`, `template.format(start + 1)`, ... in `folder`, shown at `fps`."""
    folder: str
    template: str
    start: int
    count: int
    fps: float

    def __str__(self) -> str:
        return self.folder

    def frame_path(self, index: int) -> str:
        return os.path.join(self.folder, self.template.format(self.start + index))


VideoSource = Union[str, TarMember, FrameFolder]  # a str is a video file's path


@dataclass
class Frames:
    """An opened source: its decoded frames with their times in seconds, frame rate, (width, height) and the
    number of frames it claims to have (0: it does not say)."""
    frames: Iterator[tuple[float, av.VideoFrame]]
    rate: Fraction
    size: tuple[int, int]
    claimed: int


def _open_container(source: str | TarMember) -> av.container.InputContainer:
    if isinstance(source, TarMember):
        if not os.path.exists(source.tar):
            raise VideoRejected("missing", f"tar not found: {source.tar}")
        if source.size == 0:
            raise VideoRejected("empty", f"zero-byte member: {source}")
        with open(source.tar, "rb") as handle:
            handle.seek(source.offset)
            data = handle.read(source.size)
        if len(data) < source.size:
            raise VideoRejected("truncated", f"{source}: the tar ends {source.size - len(data)} bytes into it")
        opened: str | io.BytesIO = io.BytesIO(data)
    else:
        if not os.path.exists(source):
            raise VideoRejected("missing", f"file not found: {source}")
        if os.path.getsize(source) == 0:
            raise VideoRejected("empty", f"zero-byte file: {source}")
        opened = source
    try:
        container = av.open(opened)
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        raise VideoRejected("not-a-video",
                            f"cannot open {source} (corrupt, truncated or not a video): {error}") from error
    if not container.streams.video:
        others = len(container.streams)  # read before closing: a closed container lists no streams
        container.close()
        if not others:
            raise VideoRejected("not-a-video", f"{source} has no media streams")
        raise VideoRejected("no-video-stream", f"{source} has no video stream (only {others} other)")
    return container


def _decoded(container: av.container.InputContainer, rate: Fraction) -> Iterator[tuple[float, av.VideoFrame]]:
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    for index, frame in enumerate(container.decode(stream)):
        yield (frame.time if frame.time is not None else index / float(rate)), frame


def _read_image(folder: FrameFolder, index: int) -> av.VideoFrame:
    path = folder.frame_path(index)
    if not os.path.exists(path):
        raise VideoRejected("missing", f"frame file not found: {path} ({folder.folder} should hold "
                                       f"{folder.count} frames {folder.template!r} from index {folder.start})")
    try:
        with av.open(path) as image:
            return next(image.decode(video=0))
    except (av.error.FFmpegError, StopIteration) as error:
        raise VideoRejected("undecodable", f"cannot decode frame file {path}: {error or 'no image'}") from None


def _images(folder: FrameFolder, first: av.VideoFrame) -> Iterator[tuple[float, av.VideoFrame]]:
    yield 0.0, first
    for index in range(1, folder.count):
        yield index / folder.fps, _read_image(folder, index)


@contextmanager
def open_frames(source: VideoSource) -> Iterator[Frames]:
    """The source's frames; `VideoRejected` with the reason when it is missing, empty or not a video."""
    if isinstance(source, FrameFolder):
        if not os.path.isdir(source.folder):
            raise VideoRejected("missing", f"frame folder not found: {source.folder}")
        if source.count <= 0:
            raise VideoRejected("empty", f"{source.folder}: the list gives it {source.count} frames")
        first = _read_image(source, 0)
        rate = Fraction(source.fps).limit_denominator(1001)
        yield Frames(_images(source, first), rate, (first.width, first.height), source.count)
        return
    container = _open_container(source)
    with container:
        stream = container.streams.video[0]
        rate = Fraction(stream.average_rate or stream.guessed_rate or 25).limit_denominator(1001)
        size = (stream.codec_context.width, stream.codec_context.height)
        yield Frames(_decoded(container, rate), rate, size, stream.frames)
