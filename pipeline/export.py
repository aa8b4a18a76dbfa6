"""Clip export, in process, one window at a time: per window ``[start, end)`` of a source, one unmarked scene clip
shared by every target whose candidate has that window, and per target its face-crop frames (JPEG), face-crop
clip and a still of the scene with the target marked (the annotator's pointer to the face meant). Clips are
H.264 CFR (``+faststart``, zero start), written from decoded I420 frames. Scene frames (JPEG, unmarked) are cut
by :func:`cut_scene_frames` for the clips a release ships.

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
from typing import Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np

from pipeline import yuv
from pipeline.decode import decode_range, open_info
from pipeline.media import H264Writer, VideoError, probe
from schemas.config import ExportConfig

FACE_MP4, FACE_DIR, SCENE_DIR, STILL_JPG = "face.mp4", "face", "scene", "still.jpg"
SCENES_DIR = "scenes"  # a source's shared scene clips, beside its clip folders
# a clip folder's own scene clip with its face marked: clips cut before scene clips were shared per window
MARKED_SCENE_MP4 = "scene.mp4"
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


def scene_clip_path(source_dir: str | Path, start_frame: int, end_frame: int) -> Path:
    """The unmarked scene clip of window ``[start_frame, end_frame)`` of the source whose clip folders are in
    ``source_dir``, shared by every target cut from that window."""
    return Path(source_dir) / SCENES_DIR / f"{start_frame:07d}-{end_frame:07d}.mp4"


@dataclass(frozen=True)
class ClipFiles:
    folder: Path
    scene_path: Path  # the window's unmarked scene clip (a clip cut before: its own, face marked)
    crop_path: Path
    still_path: Path | None  # the scene's middle frame with the target marked (None for a clip cut before)
    frames_dir: Path
    scene_frames_dir: Path
    sha256: str  # frames_digest of the face-crop frames
    num_frames: int


def _files(folder: Path, scene_path: Path, digest: str, n: int) -> ClipFiles:
    marked = folder / MARKED_SCENE_MP4
    if marked.is_file():
        return ClipFiles(folder, marked, folder / FACE_MP4, None, folder / FACE_DIR, folder / SCENE_DIR, digest, n)
    return ClipFiles(folder, scene_path, folder / FACE_MP4, folder / STILL_JPG, folder / FACE_DIR, folder / SCENE_DIR,
                     digest, n)


def existing_clip(folder: str | Path, num_frames: int, scene_path: str | Path) -> ClipFiles | None:
    """The files of a clip already written to ``folder`` (only its frame digest recomputed), its scene clip
    ``scene_path`` (or the marked one of a clip cut before scene clips were shared), else None."""
    folder = Path(folder)
    return _files(folder, Path(scene_path), frames_digest(folder / FACE_DIR), num_frames) if folder.is_dir() else None


class _Target:
    """One target's files being written: its crop clip encoder and its frames' hashes, in a hidden folder."""

    def __init__(self, folder: Path, boxes: np.ndarray, cfg: ExportConfig, fps: Fraction):
        self.folder, self.boxes, self.hashes = folder, boxes, []
        self.tmp = folder.with_name(f".{folder.name}.tmp")
        shutil.rmtree(self.tmp, ignore_errors=True)
        (self.tmp / FACE_DIR).mkdir(parents=True)
        # one encoder thread: windows are cut in parallel already, and x264's own threads cost more CPU
        self.encoder = H264Writer(self.tmp / FACE_MP4, cfg.crop_size, cfg.crop_size, fps, cfg.qp, cfg.preset,
                                  threads=1, constant_qp=True)


class WindowWriter:
    """Writes one window's files from its frames, handed in order to :meth:`add`: the unmarked scene clip
    ``scene_path`` (if ``write_scene``) and, per target (folder, per-frame boxes), ``face/*.jpg``,
    ``face.mp4`` (crop_size square) and ``still.jpg`` (the window's middle frame at the scene clip's size, the
    target's box marked). Files are written under hidden names; :meth:`finish` verifies the clips by probing
    and renames them, the scene clip before the target folders, so a clip appears whole or not at all."""

    def __init__(self, scene_path: Path, write_scene: bool, targets: Sequence[tuple[Path, np.ndarray]],
                 num_frames: int, width: int, height: int, fps: Fraction, cfg: ExportConfig):
        self.n, self.fps, self.cfg = num_frames, Fraction(fps), cfg
        self.still_at, self.written = num_frames // 2, 0
        sw, sh = scene_size(width, height, cfg.scene_max_height)
        self.scale = np.array([sw / width, sh / height] * 2)
        self.thickness = max(2, sh // 180)
        self.scene_path, self.scene, self.targets = scene_path, None, []
        try:
            if write_scene:
                scene_path.parent.mkdir(parents=True, exist_ok=True)
                self.scene = H264Writer(scene_path.with_name(f".{scene_path.name}.tmp"), sw, sh, self.fps, cfg.qp,
                                        cfg.preset, threads=1, constant_qp=True)
            for folder, boxes in targets:
                self.targets.append(_Target(Path(folder), boxes, cfg, self.fps))
        except BaseException:
            self.abort()
            raise

    def add(self, frame: yuv.Pyramid) -> None:
        """The next frame."""
        i, cfg = self.written, self.cfg
        if self.scene is not None:
            self.scene.write(scene_frame(frame, cfg), "yuv420p")
        for target in self.targets:
            crop = face_crop(frame, target.boxes[i], cfg.crop_margin, cfg.crop_size)
            target.hashes.append(_jpeg(target.tmp / FACE_DIR / frame_name(i), yuv.to_bgr(crop), cfg.jpeg_quality))
            target.encoder.write(crop, "yuv420p")
            if i == self.still_at:
                y, u, v = (plane.copy() for plane in scene_frame(frame, cfg))
                mark = np.rint(np.asarray(target.boxes[i][:4], float) * self.scale).astype(int).tolist()
                yuv.draw_box(y, u, v, mark, _MARK_YUV, self.thickness)
                _jpeg(target.tmp / STILL_JPG, yuv.to_bgr(yuv.join(y, u, v)), cfg.jpeg_quality)
        self.written += 1

    def finish(self) -> list[ClipFiles]:
        """The targets' files, in order; the scene clip and every folder in place."""
        try:
            if self.written != self.n:
                raise VideoError(f"{self.scene_path}: got {self.written} of the window's {self.n} frames")
            for enc in [self.scene] * (self.scene is not None) + [t.encoder for t in self.targets]:
                enc.close()
                verify_clip(enc.path, self.n, self.fps)
        except BaseException:
            self.abort()
            raise
        if self.scene is not None:
            os.replace(self.scene.path, self.scene_path)
        out = []
        for target in self.targets:
            os.replace(target.tmp, target.folder)
            out.append(_files(target.folder, self.scene_path, _digest(target.hashes), self.n))
        return out

    def abort(self) -> None:
        if self.scene is not None:
            self.scene.abort()
            self.scene.path.unlink(missing_ok=True)
        for target in self.targets:
            target.encoder.abort()
            shutil.rmtree(target.tmp, ignore_errors=True)


def cut_window(scene_path: Path, targets: Sequence[tuple[Path, np.ndarray]], width: int, height: int,
               fps: Fraction, cfg: ExportConfig, frames: Callable[[], Iterable[yuv.Pyramid]]
               ) -> tuple[list[ClipFiles], list[Path]]:
    """Every target's files of one window (see :class:`WindowWriter`), writing only what is not there yet: the
    scene clip, the target folders; ``frames()`` gives the window's frames, and is called only if something is
    missing. Returns the files in ``targets`` order and the paths this call wrote (a failure leaves none)."""
    num_frames = len(targets[0][1])
    have = [existing_clip(folder, num_frames, scene_path) for folder, _ in targets]
    todo = [t for t, files in zip(targets, have) if files is None]
    # (a window whose every clip was cut before scene clips were shared uses none)
    need_scene = not scene_path.is_file() and any(f is None or f.scene_path == scene_path for f in have)
    if not todo and not need_scene:
        return have, []
    writer = WindowWriter(scene_path, need_scene, todo, num_frames, width, height, fps, cfg)
    try:
        for frame in frames():
            writer.add(frame)
    except BaseException:
        writer.abort()
        raise
    cut = iter(writer.finish())
    out = [files if files is not None else next(cut) for files in have]
    return out, [scene_path] * bool(need_scene) + [folder for folder, _ in todo]


def range_frames(source: str | Path, start_frame: int, end_frame: int) -> Iterator[yuv.Pyramid]:
    """Frames ``[start_frame, end_frame)`` of ``source``, decoded by seeking (see :func:`decode_range`)."""
    return (yuv.Pyramid(frame) for frame in decode_range(source, start_frame, end_frame))


def cut_clip(source: str | Path, start_frame: int, boxes: np.ndarray, folder: str | Path, cfg: ExportConfig,
             fps: Fraction | None = None) -> ClipFiles:
    """Cut one target's clip of frames ``[start_frame, start_frame + len(boxes))`` of ``source`` into ``folder``
    (its window's scene clip beside it, see :func:`scene_clip_path`), decoding just that range; what is there
    is kept."""
    folder, end = Path(folder), start_frame + len(boxes)
    info = open_info(source)
    files, _ = cut_window(scene_clip_path(folder.parent, start_frame, end), [(folder, boxes)], info.width,
                          info.height, Fraction(fps or info.fps), cfg, lambda: range_frames(source, start_frame, end))
    return files[0]


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
