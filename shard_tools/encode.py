"""Re-encode one source video with PyAV: short-side resize, fps cap, time window, fixed closed GOP, no audio."""
from __future__ import annotations

import io
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Iterator

import av

from pipelines.pyav_decode import count_frames
from shard_tools.sources import VideoRejected, VideoSource, open_frames

# Encoder settings per codec. VP9 must not use alt-ref (hidden) frames: DALI's CPU decoder rejects them.
ENCODERS = {
    "vp9": ("libvpx-vp9", "yuv420p"),
    "h264": ("libx264", "yuv420p"),
    "hevc": ("libx265", "yuv420p"),
    "mjpeg": ("mjpeg", "yuvj420p"),
}
DEFAULT_CRF = {"vp9": 32, "h264": 23, "hevc": 28, "mjpeg": 0}


def color_range(pix_fmt: str) -> str:
    """The colour range a YUV pixel format implies: full ("JPEG") for yuvj*, limited ("MPEG") otherwise."""
    return "JPEG" if pix_fmt.startswith("yuvj") else "MPEG"


@dataclass(frozen=True)
class EncodeOptions:
    codec: str = "vp9"
    short_side: int = 256
    fps_cap: float | None = None
    gop: int = 16
    crf: int | None = None
    min_frames: int = 8
    use_time_window: bool = False

    def encoder_options(self) -> dict[str, str]:
        crf = str(DEFAULT_CRF[self.codec] if self.crf is None else self.crf)
        if self.codec == "vp9":
            return {"deadline": "good", "cpu-used": "5", "crf": crf, "b": "0", "auto-alt-ref": "0",
                    "lag-in-frames": "0", "keyint_min": str(self.gop)}
        # x264 and x265 open no GOP and cut none short here: every GOP holds exactly --gop frames.
        fixed_gop = f"keyint={self.gop}:min-keyint={self.gop}:scenecut=0:open-gop=0"
        if self.codec == "h264":
            return {"preset": "veryfast", "crf": crf, "x264-params": fixed_gop}
        if self.codec == "hevc":
            return {"preset": "veryfast", "crf": crf, "x265-params": f"{fixed_gop}:log-level=error"}
        return {"qmin": "2", "qmax": "4"}

    def describe(self) -> dict:
        return {**asdict(self), "encoder": ENCODERS[self.codec][0], "encoder_options": self.encoder_options()}


@dataclass(frozen=True)
class EncodedVideo:
    data: bytes
    video_frames: int
    height: int
    width: int
    fps: float
    duration: float
    source_fps: float
    source_size: tuple[int, int]


def output_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Scale so the short side is `short_side` (0 keeps the size); both sides even for yuv420p."""
    if short_side > 0:
        scale = short_side / min(width, height)
        width, height = round(width * scale), round(height * scale)
    return max(2, width - width % 2), max(2, height - height % 2)


def _selected_frames(frames: Iterator[tuple[float, av.VideoFrame]], source_rate: Fraction, out_rate: Fraction,
                     window: tuple[float, float] | None) -> Iterator[av.VideoFrame]:
    """Decoded frames inside the time window, thinned to `out_rate` by timestamp."""
    next_tick = 0
    first_time = None
    for time, frame in frames:
        if window is not None and (time < window[0] or time >= window[1]):
            if time >= window[1]:
                return
            continue
        first_time = time if first_time is None else first_time
        # Half a frame of slack: container timestamps are rounded (e.g. to milliseconds in MKV).
        if out_rate == source_rate or (time - first_time) * out_rate >= next_tick - 0.5:
            next_tick += 1
            yield frame


def reencode(source: VideoSource, options: EncodeOptions, window: tuple[float, float] | None = None) -> EncodedVideo:
    """Decode `source` (a video file, a video in a tar or a frame folder) and encode it as a shard-ready MP4;
    raise `VideoRejected` with the reason otherwise."""
    with open_frames(source) as opened:
        source_rate = opened.rate
        out_rate = source_rate
        if options.fps_cap and source_rate > options.fps_cap:
            out_rate = Fraction(options.fps_cap).limit_denominator(1001)
        width, height = output_size(*opened.size, options.short_side)
        encoder, pix_fmt = ENCODERS[options.codec]
        buffer = io.BytesIO()
        written = 0
        try:
            with av.open(buffer, "w", format="mp4") as output:
                out_stream = output.add_stream(encoder, rate=out_rate, options=options.encoder_options())
                out_stream.width, out_stream.height, out_stream.pix_fmt = width, height, pix_fmt
                out_stream.codec_context.gop_size = options.gop
                out_stream.thread_count = 1  # deterministic bytes, and parallelism comes from --workers
                active_window = window if options.use_time_window else None
                for frame in _selected_frames(opened.frames, source_rate, out_rate, active_window):
                    # Convert the range too: JPEG frames and MJPEG videos are full range, the VP9/H.264 output limited.
                    image = frame.reformat(width=width, height=height, format=pix_fmt, interpolation="AREA",
                                           src_color_range=frame.color_range or color_range(frame.format.name),
                                           dst_color_range=color_range(pix_fmt))
                    image.pts = written
                    image.time_base = 1 / out_rate
                    # A decoded frame keeps its source's picture type, which the encoders would obey (a keyframe
                    # wherever the source had one; libx265 crashes on such B-frames): the GOP grid is ours.
                    image.pict_type = av.video.frame.PictureType.NONE
                    output.mux(out_stream.encode(image))
                    written += 1
                output.mux(out_stream.encode(None))
        except av.error.FFmpegError as error:
            raise VideoRejected("undecodable", f"{source}: {error} (after {written} frames)") from error
    claimed = opened.claimed
    if not options.use_time_window and out_rate == source_rate and claimed > 0 and written < 0.9 * claimed:
        raise VideoRejected("truncated", f"{source}: decoded {written} of {claimed} frames")
    if written < options.min_frames:
        raise VideoRejected("too-short", f"{source}: {written} frames < --min-frames {options.min_frames}")
    data = buffer.getvalue()
    video_frames = count_frames(data)
    return EncodedVideo(data, video_frames, height, width, float(out_rate), video_frames / float(out_rate),
                        float(source_rate), opened.size)
