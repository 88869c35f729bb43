"""Reproducible H.264 writing of rendered clips."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# mbtree off: with it, x264 output for some short clips depended on memory left over from earlier
# encodes in the same process, so one seed gave different videos with different worker counts.
ENCODER_OPTIONS = {"preset": "veryfast", "crf": "20", "x264-params": "mbtree=0"}


def encode_h264(video: np.ndarray, fps: int, path: Path) -> None:
    """Write uint8 planar RGB frames (3, T, H, W) to `path` as H.264 yuv420p in MP4.

    One encoder thread: videos are parallel across worker processes, and the output is then a
    function of the frames alone.
    """
    height, width = video.shape[2:]
    frames = np.ascontiguousarray(video.transpose(1, 2, 3, 0))
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = height, width
        stream.pix_fmt = "yuv420p"
        stream.options = ENCODER_OPTIONS
        stream.codec_context.thread_count = 1
        time_base = stream.codec_context.time_base = Fraction(1, fps)
        for index, pixels in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = index, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
