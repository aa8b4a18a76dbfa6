"""Video file basics shared by every stage: the ffmpeg binary, probing, and writing frames to H.264."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import av
import numpy as np


class VideoError(RuntimeError):
    """A video that cannot be opened or decoded; the message names the file and what to do."""


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


def probe(path: str | Path, count_frames: bool = False) -> VideoInfo:
    """Read a video's stream facts with PyAV; ``count_frames`` demuxes (no decode) for an exact count."""
    path = str(path)
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: has no video stream; remove it from the sources")
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
        raise VideoError(f"{path}: cannot be read as a video ({exc}); re-download or remove it") from exc


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: int | Fraction = 25, crf: int = 20,
                preset: str = "veryfast") -> int:
    """Encode RGB frames as constant-frame-rate H.264 MP4 (yuv420p, faststart); return the frame count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    count = 0
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = None
        for frame in frames:
            if stream is None:
                h, w = frame.shape[:2]
                stream = out.add_stream("libx264", rate=Fraction(fps))
                stream.width, stream.height = w - w % 2, h - h % 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": preset}
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[: stream.height, : stream.width]),
                                            format="rgb24")
            out.mux(stream.encode(vf))
            count += 1
        if stream is not None:
            out.mux(stream.encode())
    if count == 0:
        tmp.unlink(missing_ok=True)
        raise ValueError(f"{path}: no frames to write")
    os.replace(tmp, path)
    return count
