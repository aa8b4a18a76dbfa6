"""Video file basics shared by every stage: the ffmpeg binary, probing, and writing frames to H.264."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterable

import av
import cv2
import numpy as np

from pipeline import yuv
from schemas.errors import UserError


class VideoError(UserError, RuntimeError):
    """A video that cannot be used; the message names the file and what to do. Its subclass says why, and is
    the ``error_kind`` of the failure row."""


class VideoOpenError(VideoError):
    """The file cannot be opened as a video (missing, not a media file, unreadable container)."""


class NoVideoStream(VideoError):
    """The file opens but holds no video stream."""


class DecodeError(VideoError):
    """Decoding failed part-way: the stream is damaged."""


class TruncatedVideo(DecodeError):
    """The stream ends well before the frames or duration its header declares."""


class SeekError(VideoError):
    """Frames could not be reached by seeking."""


class OutOfBounds(VideoError):
    """A property outside what the pipeline accepts (frame rate, duration, size), or frames outside the video."""


def ffmpeg_exe() -> str:
    """``FERV_FFMPEG``, else ffmpeg on PATH, else the static build shipped by the imageio-ffmpeg wheel."""
    if exe := os.environ.get("FERV_FFMPEG"):
        return exe
    if exe := shutil.which("ffmpeg"):
        return exe
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class VideoInfo:
    path: str
    width: int
    height: int
    fps: Fraction
    num_frames: int
    duration_s: float
    codec: str

    @property
    def fps_float(self) -> float:
        return float(self.fps)


def probe(path: str | Path, count_frames: bool = False, decode: bool = True) -> VideoInfo:
    """Read a video's stream facts with PyAV; ``count_frames`` demuxes (no decode) for an exact count.
    ``decode=False`` (single-stream files that declare their streams in the header, as the MP4s this program
    writes) reads them from the container alone: FFmpeg's stream-info pass otherwise decodes a frame, most of
    a short clip's probe time."""
    path = str(path)
    try:
        with av.open(path, **({} if decode else {"stream_options": [{"skip_frame": "all"}]})) as container:
            if not container.streams.video:
                raise NoVideoStream(f"{path}: has no video stream; remove it from the sources")
            stream = container.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate or Fraction(25)
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = 0.0
            frames = stream.frames
            if count_frames or not frames:
                frames = sum(1 for p in container.demux(stream) if p.size)
            return VideoInfo(path, stream.codec_context.width, stream.codec_context.height, Fraction(fps),
                             int(frames), duration or frames / float(fps), stream.codec_context.name)
    except VideoError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoOpenError(f"{path}: cannot be read as a video ({exc}); re-download or remove it") from exc


_TO_I420 = {"rgb24": cv2.COLOR_RGB2YUV_I420, "bgr24": cv2.COLOR_BGR2YUV_I420}


def plane_arrays(frame: av.VideoFrame) -> list[np.ndarray]:
    """Views of a frame's planes without their row padding (writable where the frame is)."""
    return [np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:p.height, :p.width] for p in frame.planes]


class H264Writer:
    """An in-process libx264 encoder writing a constant-frame-rate MP4 (yuv420p, ``+faststart``, zero start):
    frame ``i`` of :meth:`write` gets presentation time ``i / fps``. ``quality`` is x264's CRF, or its constant
    quantiser with ``constant_qp`` (no look-ahead analysis: about 15% less encoding time with ``ultrafast``)."""

    def __init__(self, path: str | Path, width: int, height: int, fps: Fraction, quality: int = 20,
                 preset: str = "veryfast", threads: int = 0, constant_qp: bool = False):
        self.path, self.count = Path(path), 0
        self.container = av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.stream.options = {"qp" if constant_qp else "crf": str(quality), "preset": preset}
        self.stream.codec_context.thread_count = threads
        self.frame = av.VideoFrame(width, height, "yuv420p")
        self.views: tuple[int, list[np.ndarray]] | None = None  # the frame's plane buffer, and views of its planes

    def write(self, image: np.ndarray | yuv.Planes, pix_fmt: str,
              overlay: Callable[[np.ndarray, np.ndarray, np.ndarray], None] | None = None) -> None:
        """Encode one frame given as ``pix_fmt`` (``yuv420p``: an I420 array or its planes; ``rgb24`` /
        ``bgr24``: h x w x 3); ``overlay`` may then draw into the frame's Y, U and V planes (the image itself is
        left as it is)."""
        if pix_fmt != "yuv420p":
            image = cv2.cvtColor(image, _TO_I420[pix_fmt])
        frame = self.frame
        frame.make_writable()  # one frame reused: copied first only if the encoder still holds its buffers
        if self.views is None or self.views[0] != frame.planes[0].buffer_ptr:  # (re)allocated
            self.views = (frame.planes[0].buffer_ptr, plane_arrays(frame))
        for view, data in zip(self.views[1], yuv.planes(image) if isinstance(image, np.ndarray) else image):
            view[...] = data
        if overlay is not None:
            overlay(*self.views[1])
        frame.pts = self.count
        self.count += 1
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        self.container.mux(self.stream.encode())
        self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except av.FFmpegError:
            pass


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: int | Fraction = 25, crf: int = 20,
                preset: str = "veryfast") -> int:
    """Encode RGB frames as constant-frame-rate H.264 MP4 (yuv420p, faststart); return the frame count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    writer = None
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                writer = H264Writer(tmp, w - w % 2, h - h % 2, Fraction(fps), crf, preset)
            writer.write(np.ascontiguousarray(frame[: writer.stream.height, : writer.stream.width]), "rgb24")
    except BaseException:
        if writer is not None:
            writer.abort()
        tmp.unlink(missing_ok=True)
        raise
    if writer is None:
        raise ValueError(f"{path}: no frames to write")
    writer.close()
    os.replace(tmp, path)
    return writer.count
