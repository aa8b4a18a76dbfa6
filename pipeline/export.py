"""Clip export, in process: face-crop frames (JPEG) and two re-encoded H.264 CFR clips (``+faststart``, zero
start) per candidate, written from decoded I420 frames: the scene clip with the target face marked, for
annotators, and the face-crop clip. Scene frames (JPEG, unmarked) are cut by :func:`cut_scene_frames` for
the clips a release ships.

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
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np

from pipeline import yuv
from pipeline.decode import decode_range, open_info
from pipeline.media import H264Writer, VideoError, probe
from schemas.config import ExportConfig

FACE_MP4, SCENE_MP4, FACE_DIR, SCENE_DIR = "face.mp4", "scene.mp4", "face", "scene"
MARK_COLOUR = (0, 255, 0)  # BGR
_MARK_YUV = yuv.bgr_to_yuv(MARK_COLOUR)
_BLACK_YUV = yuv.bgr_to_yuv((0, 0, 0))


def frame_name(position: int) -> str:
    """Name of the frame at 0-based ``position`` in playing order: 5 digits from 1, so names sort in order."""
    return f"{position + 1:05d}.jpg"


def frames_digest(folder: str | Path) -> str:
    """Digest of a clip's JPEG frames in playing order: sha256 over each frame file's sha256."""
    return _digest(hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(Path(folder).glob("*.jpg")))


def crop_square(box: Sequence[float], margin: float) -> tuple[int, int, int]:
    """Even integer square ``(x, y, side)`` centred on ``box``, its side the box's long side times
    ``1 + margin`` (even, so the square covers whole 2x2 chroma blocks of an I420 frame)."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    side = max(2, int(round(max(x2 - x1, y2 - y1) * (1.0 + margin) / 2)) * 2)
    return (int(round((x1 + x2 - side) / 4)) * 2, int(round((y1 + y2 - side) / 4)) * 2, side)


def face_crop(frame: yuv.Pyramid, box: Sequence[float], margin: float, size: int) -> np.ndarray:
    """I420 square crop around ``box`` (black outside the frame), resized to ``size`` x ``size``; cut from the
    smallest pyramid level on which the square still spans ``size`` pixels."""
    x, y, side = crop_square(box, margin)
    k = 0
    while side >> (k + 1) >= size and frame.level(k + 1) is not None:
        k += 1
    x, y, side = (int(round(v / (2 << k))) * 2 for v in (x, y, side))  # on level k, still even
    out = []
    for plane, scale, fill in zip(frame.level(k), (1, 2, 2), _BLACK_YUV):
        px, py, ps, (ph, pw) = x // scale, y // scale, side // scale, plane.shape
        x0, y0, x1, y1 = max(0, px), max(0, py), min(pw, px + ps), min(ph, py + ps)
        if x1 <= x0 or y1 <= y0:  # the face lies wholly outside the frame
            out.append(np.full((size // scale, size // scale), fill, np.uint8))
            continue
        patch = plane[y0:y1, x0:x1]
        pads = (y0 - py, py + ps - y1, x0 - px, px + ps - x1)
        if any(pads):
            patch = cv2.copyMakeBorder(patch, *pads, cv2.BORDER_CONSTANT, value=fill)
        side_out = size // scale
        out.append(cv2.resize(patch, (side_out, side_out), interpolation=yuv.interpolation(ps, side_out)))
    return yuv.join(*out)


def _jpeg(path: Path, image: np.ndarray, quality: int) -> str:
    """Write ``image`` as JPEG; return the file's sha256 (hex)."""
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise VideoError(f"{path}: JPEG encoding failed")
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _digest(frame_hashes: Iterable[str]) -> str:
    """:func:`frames_digest` from the frames' own sha256 values, in playing order."""
    h = hashlib.sha256()
    for value in frame_hashes:
        h.update(value.encode())
    return h.hexdigest()


def scene_size(width: int, height: int, max_height: int) -> tuple[int, int]:
    scale = min(1.0, max_height / height)
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def scene_frame(frame: yuv.Pyramid, cfg: ExportConfig) -> yuv.Planes:
    """The frame's planes at the scene clips' size (shared by every clip of the frame: do not write into them)."""
    return frame.planes_at(*scene_size(*frame.size, cfg.scene_max_height))


def verify_clip(path: Path, num_frames: int, fps: Fraction) -> None:
    """Probe a written clip: exactly ``num_frames`` frames lasting ``num_frames / fps`` seconds."""
    info = probe(path, count_frames=True, decode=False)
    if info.num_frames != num_frames or abs(info.duration_s - num_frames / fps) > 1.5 / float(fps):
        raise VideoError(f"{path}: written clip has {info.num_frames} frames / {info.duration_s:.3f} s, expected "
                         f"{num_frames} / {float(num_frames / fps):.3f} s; delete it and re-run `ferv clips`")


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


def existing_clip(folder: str | Path, num_frames: int) -> ClipFiles | None:
    """The files of a clip already written to ``folder`` (only its frame digest recomputed), else None."""
    folder = Path(folder)
    return _files(folder, frames_digest(folder / FACE_DIR), num_frames) if folder.is_dir() else None


class ClipWriter:
    """Writes one clip from its frames handed in order to :meth:`add`: ``face/*.jpg``, ``face.mp4`` (crop_size
    square) and ``scene.mp4`` (face marked). The files go to a hidden folder beside ``folder``;
    :meth:`finish` verifies both clips by probing and renames it, so a clip appears whole or not at all."""

    def __init__(self, folder: str | Path, boxes: np.ndarray, width: int, height: int, fps: Fraction,
                 cfg: ExportConfig):
        self.folder, self.boxes, self.fps, self.cfg = Path(folder), boxes, Fraction(fps), cfg
        self.tmp = self.folder.with_name(f".{self.folder.name}.tmp")
        shutil.rmtree(self.tmp, ignore_errors=True)
        (self.tmp / FACE_DIR).mkdir(parents=True)
        sw, sh = scene_size(width, height, cfg.scene_max_height)
        self.marks = np.rint(np.asarray(boxes, float)[:, :4] * (sh / height)).astype(int).tolist()
        self.thickness = max(2, sh // 180)
        self.written, self.hashes = 0, []
        self.encoders: list[H264Writer] = []
        try:
            # one encoder thread each: clips are cut in parallel already, and x264's own threads cost more CPU
            for name, (w, h) in ((FACE_MP4, (cfg.crop_size, cfg.crop_size)), (SCENE_MP4, (sw, sh))):
                self.encoders.append(H264Writer(self.tmp / name, w, h, fps, cfg.qp, cfg.preset, threads=1,
                                                constant_qp=True))
        except BaseException:
            self.abort()
            raise

    def add(self, frame: yuv.Pyramid) -> None:
        """The next frame."""
        box = self.boxes[self.written]
        crop = face_crop(frame, box, self.cfg.crop_margin, self.cfg.crop_size)
        self.hashes.append(_jpeg(self.tmp / FACE_DIR / frame_name(self.written), yuv.to_bgr(crop),
                                 self.cfg.jpeg_quality))
        self.encoders[0].write(crop, "yuv420p")
        mark = self.marks[self.written]
        self.encoders[1].write(scene_frame(frame, self.cfg), "yuv420p",
                               lambda y, u, v: yuv.draw_box(y, u, v, mark, _MARK_YUV, self.thickness))
        self.written += 1

    def finish(self) -> ClipFiles:
        n = len(self.boxes)
        if self.written != n:
            self.abort()
            raise VideoError(f"{self.folder}: got {self.written} of the clip's {n} frames")
        try:
            for enc in self.encoders:
                enc.close()
                verify_clip(enc.path, n, self.fps)
        except BaseException:
            self.abort()
            raise
        os.replace(self.tmp, self.folder)
        return _files(self.folder, _digest(self.hashes), n)

    def abort(self) -> None:
        for enc in self.encoders:
            enc.abort()
        shutil.rmtree(self.tmp, ignore_errors=True)


def write_clip(folder: str | Path, boxes: np.ndarray, width: int, height: int, fps: Fraction, cfg: ExportConfig,
               frames: Iterable[yuv.Pyramid]) -> ClipFiles:
    """Write one clip (see :class:`ClipWriter`) from its frames in order; a failure leaves nothing behind."""
    writer = ClipWriter(folder, boxes, width, height, fps, cfg)
    try:
        for frame in frames:
            writer.add(frame)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()


def range_frames(source: str | Path, start_frame: int, end_frame: int) -> Iterator[yuv.Pyramid]:
    """Frames ``[start_frame, end_frame)`` of ``source``, decoded by seeking (see :func:`decode_range`)."""
    return (yuv.Pyramid(frame) for frame in decode_range(source, start_frame, end_frame))


def cut_clip(source: str | Path, start_frame: int, boxes: np.ndarray, folder: str | Path, cfg: ExportConfig,
             fps: Fraction | None = None) -> ClipFiles:
    """Cut frames ``[start_frame, start_frame + len(boxes))`` of ``source`` into ``folder`` (see
    :class:`ClipWriter`), decoding just that range; an existing folder is kept."""
    if (done := existing_clip(folder, len(boxes))) is not None:
        return done
    info = open_info(source)
    return write_clip(folder, boxes, info.width, info.height, Fraction(fps or info.fps), cfg,
                      range_frames(source, start_frame, start_frame + len(boxes)))


def _boxes_by_frame(boxes: Iterable, start_frame: int, end_frame: int) -> dict[int, Sequence[float]]:
    by_frame = {int(row[0]): row[1:5] for row in boxes}
    missing = [f for f in range(start_frame, end_frame) if f not in by_frame]
    if missing:
        raise ValueError(f"no track box for frames {missing[:5]} of clip [{start_frame}, {end_frame})")
    return by_frame


def recut_face_frames(source: str | Path, start_frame: int, end_frame: int, boxes: list, frames_dir: str | Path,
                      cfg: ExportConfig) -> str:
    """Re-cut only the face-crop JPEGs of ``[start_frame, end_frame)`` into ``frames_dir`` from boxes stored as
    ``[[frame, x1, y1, x2, y2, interpolated], ...]`` (tracks.parquet rows); return their digest."""
    frames_dir = Path(frames_dir)
    frames_dir.mkdir(parents=True, exist_ok=True)
    by_frame = _boxes_by_frame(boxes, start_frame, end_frame)
    return _digest(_jpeg(frames_dir / frame_name(i), yuv.to_bgr(face_crop(
        frame, by_frame[start_frame + i], cfg.crop_margin, cfg.crop_size)), cfg.jpeg_quality)
                   for i, frame in enumerate(range_frames(source, start_frame, end_frame)))


def cut_scene_frames(source: str | Path, start_frame: int, end_frame: int, frames_dir: str | Path,
                     cfg: ExportConfig) -> None:
    """Write the unmarked scene frames (JPEG, scene clip size) of ``[start_frame, end_frame)`` into
    ``frames_dir``, which appears whole or not at all."""
    frames_dir = Path(frames_dir)
    tmp = frames_dir.with_name(f".{frames_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        for i, frame in enumerate(range_frames(source, start_frame, end_frame)):
            _jpeg(tmp / frame_name(i), yuv.to_bgr(yuv.join(*scene_frame(frame, cfg))), cfg.jpeg_quality)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.replace(tmp, frames_dir)
