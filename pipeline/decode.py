"""Decoding: one threaded PyAV pass per source, and frame-accurate ranges by seeking.

:func:`read_frames` decodes in a reader thread behind a bounded queue and hands out every frame as views of
its Y, U and V planes (:mod:`pipeline.yuv`); an exception in the reader is re-raised in the caller.
:func:`decode_range` seeks to frames ``[start, end)`` (numbered in presentation order from 0, as
:func:`read_frames` numbers them) and returns exactly those frames.
"""

from __future__ import annotations

import functools
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
from pipeline import yuv
from pipeline.media import DecodeError, NoVideoStream, OutOfBounds, SeekError, TruncatedVideo, VideoOpenError, plane_arrays

_END = object()
_SEEK_MARGIN = 16  # frames before the wanted one to seek to (decoders reorder frames around keyframes)


def fit_width(width: int, height: int, max_side: int, long_side: bool = False) -> tuple[int, int]:
    """Even frame size no larger than the source, ``max_side`` wide (or on the long side)."""
    side = max(width, height) if long_side else width
    scale = min(1.0, max_side / side)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


@dataclass(frozen=True)
class StreamInfo:
    width: int  # of the decoded I420 frames (even)
    height: int
    fps: Fraction
    declared_frames: int  # from the container; 0 when unknown


@dataclass(frozen=True)
class DecodedFrame:
    index: int
    planes: yuv.Planes  # views of the decoder's frame, which they keep alive


def _stream(container: av.container.InputContainer, path: str | Path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise NoVideoStream(f"{path}: has no video stream; remove it from the sources")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _planes(frame: av.VideoFrame) -> yuv.Planes:
    """Views of the frame's Y, U and V planes, even-sided (other pixel formats and odd sides are converted).
    No copy: FFmpeg never writes into a frame it has handed out, and its buffer pool reuses the memory once the
    views are gone."""
    width, height = frame.width & ~1, frame.height & ~1
    if frame.format.name != "yuv420p" or (width, height) != (frame.width, frame.height):
        frame = frame.reformat(width=width, height=height, format="yuv420p")
    y, u, v = plane_arrays(frame)
    for plane in (y, u, v):
        plane.flags.writeable = False
    return y, u, v


def _corrupt(path: str | Path, exc: BaseException, decoded: int | None = None, declared: int = 0) -> DecodeError:
    """The error for a decode failure; with ``decoded`` frames of ``declared`` ones, where it happened."""
    where = "" if decoded is None else f" after {decoded} frames" + (
        f" of the {declared} its header declares" if declared else "")
    short = decoded is not None and decoded < declared
    kind = TruncatedVideo if short else DecodeError
    return kind(f"{path}: decoding failed{where} ({exc}); the file is "
                f"{'truncated or damaged' if short else 'corrupt'}: re-download or remove it")


def open_info(path: str | Path) -> StreamInfo:
    try:
        with av.open(str(path)) as container:
            stream = _stream(container, path)
            fps = Fraction(stream.average_rate or stream.guessed_rate or 25)
            ctx = stream.codec_context
            return StreamInfo(ctx.width & ~1, ctx.height & ~1, fps, int(stream.frames or 0))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoOpenError(f"{path}: cannot be opened as a video ({exc}); re-download or remove it") from exc


def read_frames(path: str | Path, queue_size: int = 16, threads: int = 0) -> Iterator[DecodedFrame]:
    """Decode ``path`` once, in order, with ``threads`` decoder threads (0: FFmpeg's choice)."""
    items: queue.Queue = queue.Queue(maxsize=queue_size)
    stop = threading.Event()
    declared = [0]  # frames the stream's header declares, once the reader has opened it

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def reader() -> None:
        try:
            with av.open(str(path)) as container:
                stream = _stream(container, path)
                stream.codec_context.thread_count = threads
                declared[0] = int(stream.frames or 0)
                for index, frame in enumerate(container.decode(stream)):
                    if not put(DecodedFrame(index, _planes(frame))):
                        return
            put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    thread = threading.Thread(target=reader, name=f"decode {Path(path).name}", daemon=True)
    thread.start()
    decoded = 0
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, av.FFmpegError):
                raise _corrupt(path, item, decoded, declared[0]) from item
            if isinstance(item, BaseException):
                raise item
            decoded += 1
            yield item
    finally:
        stop.set()
        thread.join()


@functools.lru_cache(maxsize=16)
def _frame_times(path: str, mtime_ns: int, size: int) -> tuple[int, ...]:
    """Sorted presentation times of the video packets of ``path`` (demuxed once per file version)."""
    with av.open(path) as container:
        stream = _stream(container, path)
        return tuple(sorted(p.pts for p in container.demux(stream) if p.pts is not None and not p.is_discard))


def decode_range(path: str | Path, start: int, end: int) -> Iterator[yuv.Planes]:
    """Frames ``[start, end)`` of ``path`` as plane views (see :func:`read_frames`): seek near ``start``, decode
    forward, and number frames by their place in the sorted presentation times of the stream's packets."""
    try:
        stat = Path(path).stat()
        times = _frame_times(str(path), stat.st_mtime_ns, stat.st_size)
        if not 0 <= start < end <= len(times):
            raise OutOfBounds(f"{path}: frames [{start}, {end}) are outside its {len(times)} frames; the file "
                             "differs from the one the clips were cut from")
        index_of = {pts: i for i, pts in enumerate(times)}
        with av.open(str(path)) as container:
            stream = _stream(container, path)
            for seek_to in (times[max(0, start - _SEEK_MARGIN)], times[0]):
                container.seek(seek_to, stream=stream, backward=True)
                got = start
                for frame in container.decode(stream):
                    index = index_of.get(frame.pts)
                    if index is None or index < start:
                        continue
                    if index != got:  # landed after the start (or a frame is missing): retry from the top
                        break
                    yield _planes(frame)
                    got += 1
                    if got == end:
                        return
                if got > start or seek_to == times[0]:
                    raise SeekError(f"{path}: decoded frames {start}..{got - 1} of [{start}, {end}) only; the "
                                     "file is damaged: re-download it")
    except av.FFmpegError as exc:
        raise _corrupt(path, exc) from exc
