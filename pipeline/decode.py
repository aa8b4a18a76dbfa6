"""One decode pass per source: PyAV threaded decoding in a reader thread behind a bounded queue.

The reader converts each frame once per consumer size (swscale, in the reader thread) and hands the
consumers :class:`DecodedFrame` items; an exception in the reader is re-raised in the caller.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from pipeline.media import VideoError

_END = object()


@dataclass(frozen=True)
class FrameSize:
    """A consumer's frame size: ``width`` x ``height`` in ``pix_fmt`` (e.g. ``bgr24``), every ``stride``-th
    frame only (1 = every frame)."""

    width: int
    height: int
    pix_fmt: str = "rgb24"
    stride: int = 1


def fit_width(width: int, height: int, max_side: int, long_side: bool = False) -> tuple[int, int]:
    """Even frame size no larger than the source, ``max_side`` wide (or on the long side)."""
    side = max(width, height) if long_side else width
    scale = min(1.0, max_side / side)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


@dataclass(frozen=True)
class StreamInfo:
    width: int
    height: int
    fps: Fraction
    declared_frames: int  # from the container; 0 when unknown


@dataclass
class DecodedFrame:
    index: int
    images: dict[str, np.ndarray]  # consumer name -> image; absent where the consumer's stride skips


def open_info(path: str | Path) -> StreamInfo:
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: has no video stream; remove it from the sources")
            stream = container.streams.video[0]
            fps = Fraction(stream.average_rate or stream.guessed_rate or 25)
            return StreamInfo(stream.codec_context.width, stream.codec_context.height, fps, int(stream.frames or 0))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(f"{path}: cannot be opened as a video ({exc}); re-download or remove it") from exc


def read_frames(path: str | Path, sizes: dict[str, FrameSize], queue_size: int = 16) -> Iterator[DecodedFrame]:
    """Decode ``path`` once, yielding each frame converted to every consumer size it is due for."""
    items: queue.Queue = queue.Queue(maxsize=queue_size)
    stop = threading.Event()

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
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for index, frame in enumerate(container.decode(stream)):
                    images = {name: frame.reformat(width=s.width, height=s.height, format=s.pix_fmt).to_ndarray()
                              for name, s in sizes.items() if index % s.stride == 0}
                    if not put(DecodedFrame(index, images)):
                        return
            put(_END)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc)

    thread = threading.Thread(target=reader, name=f"decode {Path(path).name}", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                if isinstance(item, av.FFmpegError):
                    raise VideoError(f"{path}: decoding failed ({item}); the file is corrupt: "
                                     "re-download or remove it") from item
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
