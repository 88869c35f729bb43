"""Sparse bitstreams: keep only the GOPs that hold a clip's frames, so decoding follows T, not the video's length.

A closed GOP (a keyframe and the frames up to the next keyframe, none referring outside it) decodes to
the same pixels on its own as inside the whole video. For a clip at frame indices `indices`, the
packets of each GOP that holds one of them are copied (demuxed, not decoded) up to the last packet the
clip needs from it, into a new in-memory MP4, and the indices are remapped into that shorter video. A
decoder then walks through about T x GOP / 2 frames instead of every frame up to the last index. An
index asked for twice gets its own copy of its GOP's packets, so no index repeats: DALI's decoder would
start again from the first frame for a repeat.

The GOPs are read from the packets' keyframe flags, never assumed. A stream whose GOPs are not closed
(a frame shown before its GOP's keyframe, timestamps that overlap the next GOP) or that cannot be
remuxed is returned whole with the original indices: `SparseClip.sparse` is False then.

Timestamps in the new stream are renumbered: 0, 1, 2, ... frame steps in display order, so decoders that
order frames by timestamp (NVDEC in DALI) and those that count frames (DALI's CPU decoder, PyAV) agree.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Sequence

import av
import numpy as np


class IrregularGops(ValueError):
    """The stream's GOPs are not closed, or its timestamps do not allow a remux; decode it whole."""


@dataclass(frozen=True)
class SparseClip:
    """What to hand the decoder: a container, the frame indices into it, and what it will cost."""

    data: bytes
    indices: np.ndarray     # int32, into `data`'s frames, in the requested order; distinct when sparse
    decoded_frames: int     # frames a sequential decoder walks through: max(indices) + 1
    sparse: bool            # False: irregular GOPs, `data` is the whole video


@dataclass(frozen=True)
class _Gop:
    """One closed GOP; its timestamps are kept as demuxed, since muxing rewrites the packets' own."""

    start: int              # decode position (= display index) of its keyframe
    packets: list           # av.Packet in decode order
    pts: np.ndarray
    dts: np.ndarray


def select_gops(data: bytes, indices: Sequence[int]) -> SparseClip:
    """The clip's frames at `indices` (display order) as a sparse MP4.

    Indices past the last frame stand for the last frame (as DALI's pad_mode="edge"). Raises ValueError
    when the video holds no frames and av.error.FFmpegError when it cannot be read; irregular GOPs give
    the whole video back with the indices unchanged (`sparse=False`).
    """
    wanted = np.asarray(indices, dtype=np.int64)
    try:
        return _remux(data, wanted)
    except IrregularGops:
        return SparseClip(data, wanted.astype(np.int32), int(wanted.max()) + 1, sparse=False)


def count_packets(data: bytes) -> int:
    """Frames of the first video stream, from its packets (no decoding)."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        video_frames = sum(1 for packet in container.demux(stream) if packet.size)
    if video_frames == 0:
        raise ValueError("the video has no frames")
    return video_frames


def _remux(data: bytes, wanted: np.ndarray) -> SparseClip:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        packets = _packets_up_to(container, stream, int(wanted.max()))
        gops = _closed_gops(packets)
        wanted = np.minimum(wanted, len(packets) - 1)  # only clamps when the whole stream was read
        starts = np.array([gop.start for gop in gops])
        # A repeated index gets its own copy of its GOP: DALI's decoder restarts the whole stream for a
        # frame asked for twice, so every index must name a distinct frame.
        copies = np.stack([np.searchsorted(starts, wanted, side="right") - 1, _repeat_numbers(wanted)], axis=1)
        buffer = io.BytesIO()
        step, time_base = _frame_step(packets), stream.time_base
        copy_start: dict[tuple[int, int], int] = {}
        written = 0
        try:
            with av.open(buffer, "w", format="mp4") as output:
                out_stream = output.add_stream_from_template(stream)
                for number, repeat in np.unique(copies, axis=0).tolist():
                    gop = gops[number]
                    members = (copies[:, 0] == number) & (copies[:, 1] == repeat)
                    length = _prefix_length(gop, int(wanted[members].max()) - gop.start)
                    copy_start[number, repeat] = written
                    for packet, pts, dts in _renumbered(gop, length, written, step):
                        # A GOP copied twice reuses its packets, which the previous mux moved to the output's
                        # time base: set the demuxed one again with the new timestamps.
                        packet.time_base, packet.pts, packet.dts, packet.stream = time_base, pts, dts, out_stream
                        output.mux(packet)
                    written += length
        except av.error.FFmpegError as error:  # a codec or timestamps the MP4 muxer refuses
            raise IrregularGops(f"cannot remux: {error}") from error
    remapped = np.array([copy_start[number, repeat] + int(index) - gops[number].start
                         for index, (number, repeat) in zip(wanted, copies.tolist())], dtype=np.int32)
    return SparseClip(buffer.getvalue(), remapped, int(remapped.max()) + 1, sparse=True)


def _repeat_numbers(values: np.ndarray) -> np.ndarray:
    """For each value, how many equal values come before it (0 for a first occurrence)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    run_starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    run_of = np.searchsorted(run_starts, np.arange(len(values)), side="right") - 1
    numbers = np.empty(len(values), dtype=np.int64)
    numbers[order] = np.arange(len(values)) - run_starts[run_of]
    return numbers


def _packets_up_to(container, stream, last_index: int) -> list:
    """Packets in decode order up to and including the keyframe that follows frame `last_index`'s GOP."""
    packets = []
    for packet in container.demux(stream):
        if not packet.size:
            continue
        if packet.is_keyframe and len(packets) > last_index:
            packets.append(packet)  # the next GOP's keyframe closes the last GOP the clip needs
            return packets
        packets.append(packet)
    if not packets:
        raise ValueError("the video has no frames")
    return packets


def _closed_gops(packets: list) -> list[_Gop]:
    """Split at keyframes; check each GOP shows its keyframe first and ends before the next GOP starts."""
    if not packets[0].is_keyframe:
        raise IrregularGops("the stream does not start with a keyframe")
    if any(packet.pts is None or packet.dts is None for packet in packets):
        raise IrregularGops("packets without timestamps")
    keyframes = [position for position, packet in enumerate(packets) if packet.is_keyframe]
    gops = []
    for begin, end in zip(keyframes, keyframes[1:] + [len(packets)]):
        group = packets[begin:end]
        times = [packet.pts for packet in group]
        if min(times) != group[0].pts:
            raise IrregularGops(f"open GOP at frame {begin}: a frame is shown before its keyframe")
        if end < len(packets) and max(times) >= packets[end].pts:
            raise IrregularGops(f"GOP at frame {begin} overlaps the next one in display order")
        gops.append(_Gop(begin, group, np.array(times), np.array([packet.dts for packet in group])))
    return gops


def _display_ranks(times: np.ndarray) -> np.ndarray:
    """Each packet's position in display order, from the display timestamps of packets in decode order."""
    return np.argsort(np.argsort(times, kind="stable"), kind="stable")


def _prefix_length(gop: _Gop, last_rank: int) -> int:
    """How many packets (decode order) of the GOP yield its frames of display rank 0..last_rank.

    With B-frames the prefix can hold a later-shown reference frame too: it sorts after last_rank.
    """
    return int(np.flatnonzero(_display_ranks(gop.pts) <= last_rank).max()) + 1


def _renumbered(gop: _Gop, length: int, first_frame: int, step: int):
    """(packet, pts, dts) of the GOP's first `length` packets with pts = display rank and dts = decode
    position, in frame steps, after `first_frame`.

    The decoder delay of the source (pts - dts of the keyframe, B-frames) is kept so that dts <= pts.
    """
    ranks = _display_ranks(gop.pts[:length])
    delay = int(gop.pts[0] - gop.dts[0]) // step
    renumbered = []
    for position, (packet, rank) in enumerate(zip(gop.packets[:length], ranks)):
        pts, dts = (first_frame + int(rank)) * step, (first_frame + position - delay) * step
        if dts > pts:
            raise IrregularGops("decode timestamps run ahead of display timestamps")
        renumbered.append((packet, pts, dts))
    return renumbered


def _frame_step(packets: list) -> int:
    """One frame's duration in the stream's time base: the smallest gap between display timestamps."""
    times = np.unique([packet.pts for packet in packets])
    gaps = np.diff(times)
    step = int(gaps.min()) if gaps.size else int(packets[0].duration or 1)
    if step <= 0:
        raise IrregularGops("display timestamps do not increase")
    return step

