"""Clip export with ffmpeg: frame-accurate range decode, face-crop and scene frames (JPEG), and re-encoded
H.264 CFR clips (``+faststart``, zero start): the scene clip with the target face marked, the face-crop clip.

The face-crop frames depend only on the source's decoded pixels, the per-frame boxes and the export
settings, so a re-cut from metadata (:func:`recut_face_frames`) gives byte-identical JPEGs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import ffmpeg
import numpy as np

from pipeline.media import VideoError, ffmpeg_exe, probe
from schemas.config import ExportConfig

FACE_MP4, SCENE_MP4, FACE_DIR, SCENE_DIR = "face.mp4", "scene.mp4", "face", "scene"
MARK_COLOUR = (0, 255, 0)  # BGR


def frame_name(position: int) -> str:
    return f"{position + 1:05d}.jpg"


def frames_digest(folder: str | Path) -> str:
    """Digest of a clip's JPEG frames in playing order: sha256 over each frame file's sha256."""
    h = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.jpg")):
        h.update(hashlib.sha256(path.read_bytes()).hexdigest().encode())
    return h.hexdigest()


def crop_square(box: Sequence[float], margin: float) -> tuple[int, int, int]:
    """Integer square ``(x, y, side)`` centred on ``box``, its side the box's long side times ``1 + margin``."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    side = max(2, int(round(max(x2 - x1, y2 - y1) * (1.0 + margin))))
    return int(round((x1 + x2) / 2 - side / 2)), int(round((y1 + y2) / 2 - side / 2)), side


def face_crop(frame: np.ndarray, box: Sequence[float], margin: float, size: int) -> np.ndarray:
    """The square crop around ``box`` (black outside the frame), resized to ``size`` x ``size``."""
    h, w = frame.shape[:2]
    x, y, side = crop_square(box, margin)
    patch = frame[max(0, y):min(h, y + side), max(0, x):min(w, x + side)]
    pads = (max(0, -y), max(0, y + side - h), max(0, -x), max(0, x + side - w))
    if patch.size == 0:  # the face lies wholly outside the frame
        return np.zeros((size, size, 3), np.uint8)
    if any(pads):
        patch = cv2.copyMakeBorder(patch, *pads, cv2.BORDER_CONSTANT, value=0)
    interp = cv2.INTER_AREA if side >= size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp)


def _jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise VideoError(f"{path}: JPEG encoding failed")
    path.write_bytes(data.tobytes())


def decode_range(source: str | Path, start: int, count: int, fps: Fraction, width: int,
                 height: int) -> Iterator[np.ndarray]:
    """Frames ``[start, start + count)`` of ``source`` as BGR arrays, via an ffmpeg pipe (accurate seek)."""
    seek = max(0.0, float((start - Fraction(1, 2)) / fps)) if start else 0.0
    proc = (ffmpeg.input(str(source), ss=seek)
            .output("pipe:", format="rawvideo", pix_fmt="bgr24", vframes=count, fps_mode="passthrough")
            .global_args("-nostdin", "-loglevel", "error")
            .run_async(cmd=ffmpeg_exe(), pipe_stdout=True, pipe_stderr=True))
    size = width * height * 3
    got = 0
    try:
        while got < count:
            data = proc.stdout.read(size)
            if len(data) < size:
                break
            got += 1
            yield np.frombuffer(data, np.uint8).reshape(height, width, 3)
    finally:
        proc.stdout.close()
        err = proc.stderr.read().decode(errors="replace").strip()
        proc.wait()
    if got < count:
        raise VideoError(f"{source}: ffmpeg returned {got} of {count} frames from frame {start} "
                         f"({err or 'no message'})")


class _Encoder:
    """An ffmpeg process encoding BGR frames from a pipe to constant-frame-rate H.264 MP4."""

    def __init__(self, path: Path, width: int, height: int, fps: Fraction, cfg: ExportConfig):
        self.path = path
        self.proc = (ffmpeg.input("pipe:", format="rawvideo", pix_fmt="bgr24", s=f"{width}x{height}",
                                  framerate=f"{fps.numerator}/{fps.denominator}")
                     .output(str(path), vcodec="libx264", pix_fmt="yuv420p", crf=cfg.crf, preset=cfg.preset,
                             movflags="+faststart", r=f"{fps.numerator}/{fps.denominator}", f="mp4")
                     .global_args("-nostdin", "-loglevel", "error", "-y")
                     .run_async(cmd=ffmpeg_exe(), pipe_stdin=True, pipe_stderr=True))

    def write(self, frame: np.ndarray) -> None:
        self.proc.stdin.write(np.ascontiguousarray(frame).tobytes())

    def close(self) -> None:
        self.proc.stdin.close()
        err = self.proc.stderr.read().decode(errors="replace").strip()
        if self.proc.wait() != 0:
            raise VideoError(f"{self.path}: ffmpeg encoding failed: {err}")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def verify_clip(path: Path, num_frames: int, fps: Fraction) -> None:
    """Probe a written clip: exactly ``num_frames`` frames lasting ``num_frames / fps`` seconds."""
    info = probe(path, count_frames=True)
    if info.num_frames != num_frames or abs(info.duration_s - num_frames / fps) > 1.5 / float(fps):
        raise VideoError(f"{path}: written clip has {info.num_frames} frames / {info.duration_s:.3f} s, expected "
                         f"{num_frames} / {float(num_frames / fps):.3f} s; delete it and re-run `ferv clips`")


def scene_size(width: int, height: int, max_height: int) -> tuple[int, int]:
    scale = min(1.0, max_height / height)
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


@dataclass(frozen=True)
class ClipFiles:
    folder: Path
    scene_path: Path
    crop_path: Path
    frames_dir: Path
    scene_frames_dir: Path
    sha256: str  # frames_digest of the face-crop frames
    num_frames: int


def _files(folder: Path, digest: str, n: int) -> ClipFiles:
    return ClipFiles(folder, folder / SCENE_MP4, folder / FACE_MP4, folder / FACE_DIR, folder / SCENE_DIR, digest, n)


def cut_clip(source: str | Path, start_frame: int, boxes: np.ndarray, folder: str | Path, cfg: ExportConfig,
             fps: Fraction | None = None) -> ClipFiles:
    """Cut frames ``[start_frame, start_frame + len(boxes))`` of ``source`` into ``folder``: ``scene.mp4`` (face
    marked), ``face.mp4`` (crop_size square), ``face/*.jpg`` and ``scene/*.jpg``; every clip verified by probing.

    ``boxes`` are the smoothed per-frame face boxes (source pixels). The folder appears whole or not at all
    (written beside it, then renamed); an existing folder is kept and only its frame digest recomputed."""
    folder = Path(folder)
    n = len(boxes)
    if folder.is_dir():
        return _files(folder, frames_digest(folder / FACE_DIR), n)
    info = probe(source)
    fps = Fraction(fps or info.fps)
    tmp = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / FACE_DIR).mkdir(parents=True)
    (tmp / SCENE_DIR).mkdir()
    sw, sh = scene_size(info.width, info.height, cfg.scene_max_height)
    k = sh / info.height
    encoders = [_Encoder(tmp / FACE_MP4, cfg.crop_size, cfg.crop_size, fps, cfg),
                _Encoder(tmp / SCENE_MP4, sw, sh, fps, cfg)]
    try:
        frames = decode_range(source, start_frame, n, fps, info.width, info.height)
        for i, (frame, box) in enumerate(zip(frames, boxes)):
            crop = face_crop(frame, box, cfg.crop_margin, cfg.crop_size)
            _jpeg(tmp / FACE_DIR / frame_name(i), crop, cfg.jpeg_quality)
            encoders[0].write(crop)
            scene = cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA)
            _jpeg(tmp / SCENE_DIR / frame_name(i), scene, cfg.jpeg_quality)
            x1, y1, x2, y2 = (int(round(v * k)) for v in box[:4])
            cv2.rectangle(scene, (x1, y1), (x2, y2), MARK_COLOUR, max(2, sh // 180))
            encoders[1].write(scene)
        for enc in encoders:
            enc.close()
    except BaseException:
        for enc in encoders:
            enc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for path in (tmp / FACE_MP4, tmp / SCENE_MP4):
        verify_clip(path, n, fps)
    digest = frames_digest(tmp / FACE_DIR)
    os.replace(tmp, folder)
    return _files(folder, digest, n)


def recut_face_frames(source: str | Path, start_frame: int, end_frame: int, boxes: list, frames_dir: str | Path,
                      cfg: ExportConfig) -> str:
    """Re-cut only the face-crop JPEGs of ``[start_frame, end_frame)`` into ``frames_dir`` from boxes stored as
    ``[[frame, x1, y1, x2, y2, interpolated], ...]`` (tracks.parquet rows); return their digest."""
    frames_dir = Path(frames_dir)
    frames_dir.mkdir(parents=True, exist_ok=True)
    by_frame = {int(row[0]): row[1:5] for row in boxes}
    missing = [f for f in range(start_frame, end_frame) if f not in by_frame]
    if missing:
        raise ValueError(f"no track box for frames {missing[:5]} of clip [{start_frame}, {end_frame})")
    info = probe(source)
    frames = decode_range(source, start_frame, end_frame - start_frame, Fraction(info.fps), info.width, info.height)
    for i, frame in enumerate(frames):
        _jpeg(frames_dir / frame_name(i), face_crop(frame, by_frame[start_frame + i], cfg.crop_margin, cfg.crop_size),
              cfg.jpeg_quality)
    return frames_digest(frames_dir)

