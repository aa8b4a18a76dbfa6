"""The clips stage: per source, one decode pass -> shots + faces -> tracks -> candidate selection -> export.

Per-source results go to ``WORKDIR/parts/<source_id>/{shots,tracks,clips,rejects}.parquet`` with a completion
marker holding the hash of the settings that shape them; a source whose marker matches is skipped.
:func:`merge_parts` joins the parts into the top-level manifests; :func:`make_clips` runs every source of
``sources.parquet`` in worker processes and records a failing source in ``failures.parquet``.
"""

from __future__ import annotations

import mmap
import os
import shutil
import time
from collections import deque
from contextlib import contextmanager, suppress
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing import current_process, get_context
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import pandas as pd

from pipeline import yuv
from pipeline.decode import StreamInfo, fit_width, open_info, read_frames
from pipeline.expression import expression_enabled, face_scorer, frame_scores
from pipeline.export import ClipFiles, existing_clip, range_frames, write_clip
from pipeline.faces import models_dir, resolve_faces
from pipeline.media import VideoError
from pipeline.models import ModelNotFoundError
from pipeline.progress import ProgressFn, no_progress
from pipeline.select import Candidate, blur_score, select_candidates
from pipeline.shots import ShotScorer, shot_record
from pipeline.tracks import build_tracks
from schemas.config import BuildConfig, ExportConfig, FacesConfig
from schemas.ids import clip_id as make_clip_id
from schemas.ids import config_hash
from schemas.ids import track_id as make_track_id
from schemas.manifests import SCHEMAS, clear_failure, in_workdir, read_manifest, record_failure, write_manifest
from schemas.records import ClipRecord, FailureRecord, RejectRecord, ShotRecord, TrackRow

STAGE = "clips"
PARTS = ("shots", "tracks", "clips", "rejects")
SORT_KEYS = {"shots": ["source_id", "shot_index"], "tracks": ["track_id", "frame"],
             "clips": ["source_id", "start_frame", "track_id"],
             "rejects": ["source_id", "start_frame", "track_id", "end_frame"]}
MIN_DECODED_SHARE = 0.98  # fewer decoded frames than this share of the declared count = truncated file
_RUNTIME_ONLY = {"models_dir", "device", "threads", "batch_size"}  # face settings that do not change results


@dataclass(frozen=True)
class SourceClipsResult:
    source_id: str
    skipped: bool  # the completion marker matched: nothing was done
    frames: int = 0
    shots: int = 0
    tracks: int = 0
    clips: int = 0
    rejects: int = 0
    seconds: float = 0.0


@dataclass
class ClipsSummary:
    sources: int
    processed: int
    skipped: int
    failed: int
    counts: dict[str, int] = field(default_factory=dict)  # rows per merged manifest
    failures: list[str] = field(default_factory=list)  # "source_id: message"


def stage_config_hash(cfg: BuildConfig) -> str:
    """Hash of the settings that shape a source's shots, tracks and clips (not runtime knobs; the face
    detector backend and precision as resolved)."""
    return config_hash({"shots": cfg.shots.model_dump(mode="json"),
                        "faces": resolve_faces(cfg.faces).model_dump(mode="json", exclude=_RUNTIME_ONLY),
                        "tracks": cfg.tracks.model_dump(mode="json"), "select": cfg.select.model_dump(mode="json"),
                        "export": cfg.export.model_dump(mode="json"), "expression": expression_enabled(cfg)})


def part_dir(workdir: Path, source_id: str) -> Path:
    return Path(workdir) / "parts" / source_id


def completion_marker(workdir: Path, source_id: str) -> Path:
    return part_dir(workdir, source_id) / "DONE"


def clips_dir(workdir: Path, source_id: str) -> Path:
    return Path(workdir) / "clips" / source_id


_detectors: dict[str, object] = {}


def _detector(cfg: FacesConfig):
    """One face detector per process and face settings (model sessions are expensive to build)."""
    from pipeline.faces import load_detector

    key = config_hash(cfg)
    if key not in _detectors:
        _detectors[key] = load_detector(cfg)
    return _detectors[key]


class FrameRing:
    """Slots for decoded frames, in memory shared with the exporter processes (anonymous: forked processes
    inherit it). A slot holds a frame's full-size planes and, where the frame halves, its first halving (the
    source of 720p scene clips and of most face crops)."""

    def __init__(self, width: int, height: int, budget_bytes: int):
        self.shapes = [(height * 3 // 2, width)]
        if yuv.Pyramid.halves(width, height):
            self.shapes.append((height * 3 // 4, width // 2))
        self.slot_bytes = sum(h * w for h, w in self.shapes)
        self.slots = max(2, budget_bytes // self.slot_bytes)
        self.memory = mmap.mmap(-1, self.slots * self.slot_bytes)  # touched only where slots are used

    def _arrays(self, slot: int) -> list[np.ndarray]:
        """The I420 arrays of ``slot``: the frame, then its halving where it has one."""
        arrays, offset = [], slot * self.slot_bytes
        for h, w in self.shapes:
            arrays.append(np.frombuffer(self.memory, np.uint8, h * w, offset).reshape(h, w))
            offset += h * w
        return arrays

    def frame(self, slot: int) -> yuv.Pyramid:
        """The frame in ``slot``, as a pyramid over the shared arrays."""
        return yuv.Pyramid(*self._arrays(slot))

    def fill(self, slot: int, planes: yuv.Planes) -> yuv.Pyramid:
        """Copy a decoded frame into ``slot`` and halve it there."""
        arrays = self._arrays(slot)
        yuv.resize_into(planes, arrays[0])
        if len(arrays) > 1:
            yuv.resize_into(yuv.planes(arrays[0]), arrays[1])
        return yuv.Pyramid(*arrays)


class FrameBuffer:
    """The decoded frames of the shots not yet exported, oldest first, each in a slot of a :class:`FrameRing`;
    freed slots are reused first, so only as much memory is touched as is held at once. When no slot is free,
    ``make_room`` is called first (the owner waits for queued shots' exports, which frees their slots); if
    still none is free, the oldest frame goes, the first of a shot too long to hold (its clips are then cut by
    seeking, so memory stays flat however long a shot is). Used by the decoding thread only."""

    def __init__(self, ring: FrameRing, make_room: Callable[[], None] = lambda: None):
        self.ring, self.make_room = ring, make_room
        self.held: deque[tuple[int, int]] = deque()  # frame index, slot
        self.free = list(range(ring.slots - 1, -1, -1))

    def full(self) -> bool:
        return not self.free

    def push(self, index: int, planes: yuv.Planes) -> yuv.Pyramid:
        """Hold decoded frame ``index``; its pyramid, over its slot."""
        if self.full():
            self.make_room()
        if self.full():
            self.free.append(self.held.popleft()[1])
        slot = self.free.pop()
        self.held.append((index, slot))
        return self.ring.fill(slot, planes)

    def slots(self, start: int, end: int) -> list[int] | None:
        """The slots of frames ``[start, end)``, or None when some are no longer held."""
        if not self.held or self.held[0][0] > start:
            return None
        first = self.held[0][0]
        return [self.held[i - first][1] for i in range(start, end)]

    def drop_before(self, index: int) -> None:
        while self.held and self.held[0][0] < index:
            self.free.append(self.held.popleft()[1])


@dataclass
class _Shot:
    record: ShotRecord
    detections: dict[int, np.ndarray]  # frame -> (N, 6) x1, y1, x2, y2 (source pixels), score, blur


def _shots(path: Path, source_id: str, info: StreamInfo, cfg: BuildConfig, buffer: FrameBuffer,
           progress: ProgressFn) -> Iterator[_Shot]:
    """The single decode pass: every frame goes to the buffer and the shot scorer, every ``faces.stride``-th
    to the face detector; each shot is handed out, with its detections, as soon as its end is settled."""
    shot_size = fit_width(info.width, info.height, cfg.shots.downscale_width)
    face_size = fit_width(info.width, info.height, cfg.faces.det_sizes[0], long_side=True)
    to_source = np.array([info.width / face_size[0], info.height / face_size[1]] * 2)
    scorer, detector, expression = ShotScorer(cfg.shots, info.fps), _detector(cfg.faces), face_scorer(cfg)
    detections: dict[int, np.ndarray] = {}
    batch: list[tuple[int, np.ndarray, np.ndarray]] = []  # frame index, detector input, decoder's full-size luma

    def flush() -> None:
        for (index, _, luma), dets in zip(batch, detector.detect([image for _, image, _ in batch])):
            boxes = dets[:, :4] * to_source
            detections[index] = np.column_stack([boxes, dets[:, 4], [blur_score(luma, b) for b in boxes],
                                                 expression.columns(luma, boxes)])
        batch.clear()

    def close(end: int) -> _Shot:
        flush()
        start = shots[-1].end_frame if shots else 0
        shots.append(shot_record(source_id, len(shots), start, end, info.fps))
        mine = {f: detections.pop(f) for f in sorted(detections) if f < end}
        return _Shot(shots[-1], mine)

    shots: list[ShotRecord] = []
    frames = 0
    for decoded in read_frames(path, threads=cfg.clips.decode_threads):
        index, frame = decoded.index, buffer.push(decoded.index, decoded.planes)
        cuts = scorer.add(index, yuv.to_bgr(frame.resize(*shot_size)))
        if index % cfg.faces.stride == 0:  # (the decoder's luma: a slot may be reused before the batch is run)
            batch.append((index, yuv.to_rgb(frame.resize(*face_size)), decoded.planes[0]))
            if len(batch) >= cfg.faces.batch_size:
                flush()
        for cut in cuts:
            yield close(cut)
        frames = index + 1
        if frames % 50 == 0:
            progress(f"{source_id}: frames", frames, info.declared_frames or None)
    progress(f"{source_id}: frames", frames, info.declared_frames or None)
    if frames == 0 or (info.declared_frames and frames < MIN_DECODED_SHARE * info.declared_frames):
        raise VideoError(f"{path}: truncated: decoded {frames} of the {info.declared_frames} frames its header "
                         "declares; re-download or remove it")
    for cut in scorer.finish():
        yield close(cut)
    yield close(frames)


def _source_row(workdir: Path, source_id: str) -> pd.Series:
    sources = read_manifest(workdir, "sources")
    rows = sources[sources["source_id"] == source_id]
    if rows.empty:
        raise KeyError(f"source {source_id} is not in {workdir}/sources.parquet; run `ferv acquire` first")
    return rows.iloc[0]


@dataclass
class _Rows:
    shots: list[ShotRecord] = field(default_factory=list)
    tracks: list[TrackRow] = field(default_factory=list)
    clips: list[ClipRecord] = field(default_factory=list)
    rejects: list[RejectRecord] = field(default_factory=list)

    def extend(self, other: "_Rows") -> None:
        for name in PARTS:
            getattr(self, name).extend(getattr(other, name))


@dataclass
class _Pending:
    """A closed shot's rows, waiting for its clips to be cut."""
    rows: _Rows  # its one shot row, its tracks and rejects; its clips once cut
    clips: list[tuple[str, Candidate, Future]]  # track id, candidate, its ClipFiles to come

    @property
    def record(self) -> ShotRecord:
        return self.rows.shots[0]

    def done(self) -> bool:
        return all(future.done() for _, _, future in self.clips)


def _plan(workdir: Path, source_id: str, info: StreamInfo, cfg: BuildConfig,
          shot: _Shot) -> tuple[_Rows, list[tuple[str, Candidate, Path, np.ndarray]]]:
    """Tracks and candidate selection of one closed shot: its rows, and its clips to cut (track id,
    candidate, clip folder, per-frame boxes)."""
    record, rows, clips = shot.record, _Rows(shots=[shot.record]), []
    tracks = build_tracks(shot.detections, (record.start_frame, record.end_frame), cfg.tracks, cfg.faces.stride)
    for ordinal, track in enumerate(tracks):
        tid = make_track_id(source_id, record.shot_index, ordinal)
        scores = frame_scores(track.expression, len(track.frames))  # top expression, intensity per frame
        rows.tracks += [TrackRow(tid, source_id, record.shot_index, int(f), *map(float, b), float(s), bool(i), *e)
                        for f, b, s, i, e in zip(track.frames, track.boxes, track.scores, track.interpolated, scores)]
        kept, dropped = select_candidates(track, info.fps, cfg.select, source_id, tid, record.shot_index,
                                          cfg.faces.stride)
        rows.rejects += dropped
        for cand in kept:
            folder = clips_dir(workdir, source_id) / make_clip_id(source_id, cand.start, cand.end, tid)
            clips.append((tid, cand, folder, track.boxes[cand.start - int(track.frames[0]):
                                                         cand.end - int(track.frames[0])]))
    return rows, clips


_ring: FrameRing | None = None  # in an exporter process: the decoding process's frames


def _use_ring(ring: FrameRing) -> None:
    global _ring
    _ring = ring


def _cut(path: Path, folder: Path, start: int, boxes: np.ndarray, slots: list[int] | None, info: StreamInfo,
         cfg: ExportConfig, ring: FrameRing | None = None) -> tuple[ClipFiles, bool]:
    """One clip's files, from the frames in ``slots`` of ``ring`` (in an exporter process: the ring it shares
    with the decoding one), or by seeking if they were dropped; a folder already there is kept. The files, and
    whether this call wrote them."""
    if (files := existing_clip(folder, len(boxes))) is not None:
        return files, False
    ring = ring or _ring
    frames = ((ring.frame(slot) for slot in slots) if slots is not None
              else range_frames(path, start, start + len(boxes)))
    return write_clip(folder, boxes, info.width, info.height, info.fps, cfg, frames), True


def _clip_record(workdir: Path, row: pd.Series, fps: Fraction, shot_index: int, tid: str, cand: Candidate,
                 files: ClipFiles) -> ClipRecord:
    rel = lambda p: str(Path(p).relative_to(workdir))  # noqa: E731
    return ClipRecord(
        clip_id=files.folder.name, source_id=row["source_id"], scene=row["scene"], scenario=row["scenario"],
        track_id=tid, shot_index=shot_index, start_frame=cand.start, end_frame=cand.end,
        num_frames=cand.end - cand.start, start_s=float(cand.start / fps), end_s=float(cand.end / fps),
        fps=float(fps), box_x1=cand.box[0], box_y1=cand.box[1], box_x2=cand.box[2], box_y2=cand.box[3],
        face_px=cand.face_px, det_score=cand.det_score, detected_fraction=cand.detected_fraction, blur=cand.blur,
        scene_path=rel(files.scene_path), crop_path=rel(files.crop_path), frames_dir=rel(files.frames_dir),
        scene_frames_dir=rel(files.scene_frames_dir), sha256=files.sha256,
        predicted_expression=cand.expression, predicted_prob=cand.expression_prob, intensity=cand.intensity)


def _exporters(count: int, ring: FrameRing) -> tuple[Executor, FrameRing | None]:
    """The executor that cuts the clips of closed shots while the decoding process decodes and detects the next
    ones, and the ring to hand its tasks. Processes, forked (so sharing ``ring``) before the decoding thread
    starts: unlike threads, they never wait on the decoding process's interpreter lock. Threads (given the ring)
    in a daemonic process, such as a Dask worker, which may not have children."""
    if current_process().daemon:
        return ThreadPoolExecutor(count, thread_name_prefix="export"), ring
    return ProcessPoolExecutor(count, mp_context=get_context("fork"), initializer=_use_ring, initargs=(ring,)), None


@contextmanager
def _single_threaded_opencv() -> Iterator[None]:
    """OpenCV without its own worker threads: the decoding and detector threads and the exporters fill the cores,
    and OpenCV splitting each small resize across threads costs more CPU than it saves."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def process_source(workdir: Path, source_id: str, cfg: BuildConfig,
                   progress: ProgressFn = no_progress) -> SourceClipsResult:
    """Shots, tracks, selected clips (with files) and rejects of one source, written as part files; clips are
    exported shot by shot while the source is decoded, from the frames the decode pass holds (by the exporters
    of :func:`_exporters`)."""
    workdir = Path(workdir)
    marker, stamp = completion_marker(workdir, source_id), stage_config_hash(cfg)
    if marker.is_file() and marker.read_text().strip() == stamp:
        return SourceClipsResult(source_id, skipped=True)
    started = time.perf_counter()
    row = _source_row(workdir, source_id)
    path = in_workdir(workdir, row["path"])
    if not path.is_file():
        raise FileNotFoundError(f"source {source_id}: video {path} does not exist; re-run `ferv acquire`")
    parts, out_root = part_dir(workdir, source_id), clips_dir(workdir, source_id)
    marker.unlink(missing_ok=True)
    settings = parts / "CONFIG"
    if settings.is_file() and settings.read_text().strip() != stamp:  # clips cut with other settings
        shutil.rmtree(out_root, ignore_errors=True)
    parts.mkdir(parents=True, exist_ok=True)
    settings.write_text(stamp + "\n")

    cfg = cfg.model_copy(update={"faces": resolve_faces(cfg.faces)})
    info = open_info(path)
    pending: deque[_Pending] = deque()
    rows, written = _Rows(), []

    def settle(shot: _Pending) -> None:  # in shot order: rows stay in order, frames are dropped behind
        for tid, cand, future in shot.clips:
            files, wrote = future.result()
            written.extend([files.folder] if wrote else [])
            shot.rows.clips.append(_clip_record(workdir, row, info.fps, shot.record.shot_index, tid, cand, files))
        rows.extend(shot.rows)
        buffer.drop_before(shot.record.end_frame)
        progress(f"{source_id}: clips", len(rows.clips), None)

    def make_room() -> None:  # the decode pass waits for pending clips rather than drop their frames
        while pending and buffer.full():
            settle(pending.popleft())

    buffer = FrameBuffer(FrameRing(info.width, info.height, cfg.clips.buffer_mb * 2**20), make_room)
    exporter, ring = _exporters(cfg.clips.exporters, buffer.ring)
    try:
        with _single_threaded_opencv(), exporter:
            exporter.submit(int).result()  # starts them now, before the decoding thread
            try:
                for shot in _shots(path, source_id, info, cfg, buffer, progress):
                    # two shots export while the next is decoded: running further ahead would only hold more
                    # frames, and touching fresh memory costs CPU time the exporters need
                    while len(pending) > 1 or (pending and pending[0].done()):
                        settle(pending.popleft())
                    shot_rows, clips = _plan(workdir, source_id, info, cfg, shot)
                    pending.append(_Pending(shot_rows, [
                        (tid, cand, exporter.submit(_cut, path, folder, cand.start, boxes,
                                                    buffer.slots(cand.start, cand.end), info, cfg.export, ring))
                        for tid, cand, folder, boxes in clips]))
                while pending:
                    settle(pending.popleft())
            finally:
                for shot in pending:
                    for _, _, future in shot.clips:
                        future.cancel()
    except BaseException:
        for shot in pending:  # cut, but not settled
            written.extend(f.result()[0].folder for _, _, f in shot.clips
                           if f.done() and not f.cancelled() and f.exception() is None and f.result()[1])
        for folder in written:  # a failed source leaves no clip files of this run behind
            shutil.rmtree(folder, ignore_errors=True)
        raise
    wanted = {c.clip_id for c in rows.clips}
    for stale in (out_root.iterdir() if out_root.is_dir() else []):  # clips of earlier, other selections
        if stale.name not in wanted:
            shutil.rmtree(stale, ignore_errors=True)

    for name in PARTS:
        write_manifest(parts, name, getattr(rows, name))
    tmp = marker.with_name(".DONE.tmp")
    tmp.write_text(stamp + "\n")
    os.replace(tmp, marker)
    frames = rows.shots[-1].end_frame if rows.shots else 0
    return SourceClipsResult(source_id, False, frames, len(rows.shots), len({t.track_id for t in rows.tracks}),
                             len(rows.clips), len(rows.rejects), time.perf_counter() - started)


def merge_parts(workdir: Path) -> dict[str, int]:
    """Join the complete parts of the sources in ``sources.parquet`` into the top-level manifests (sorted)."""
    workdir = Path(workdir)
    known = set(read_manifest(workdir, "sources")["source_id"])
    done = sorted(p.parent for p in (workdir / "parts").glob("*/DONE") if p.parent.name in known)
    counts = {}
    for name in PARTS:
        frames = [read_manifest(d, name) for d in done]
        frames = [f for f in frames if not f.empty]
        merged = pd.concat(frames, ignore_index=True) if frames else SCHEMAS[name].empty_table().to_pandas()
        merged = merged.sort_values(SORT_KEYS[name], kind="stable").reset_index(drop=True)
        write_manifest(workdir, name, merged)
        counts[name] = len(merged)
    return counts


def _worker_config(cfg: BuildConfig, workers: int) -> BuildConfig:
    """Share the cores between worker processes' detectors, unless the config fixes the thread count."""
    if workers <= 1 or cfg.faces.threads:
        return cfg
    faces = cfg.faces.model_copy(update={"threads": max(1, (os.cpu_count() or 1) // workers)})
    return cfg.model_copy(update={"faces": faces})


def _build_shared_models(cfg: BuildConfig) -> None:
    """Build derived model files (int8 CenterFace) once, before worker processes would each build them; a
    missing model is left for each source to report."""
    faces = resolve_faces(cfg.faces)
    if faces.backend == "centerface" and faces.precision == "int8":
        from pipeline.faces.quantize import int8_model

        with suppress(ModelNotFoundError):
            int8_model(models_dir(faces))


def make_clips(workdir: Path, cfg: BuildConfig, progress: ProgressFn = no_progress,
               workers: int | None = None) -> ClipsSummary:
    """Run :func:`process_source` over every source (in parallel processes), record failures, then merge."""
    workdir = Path(workdir)
    ids = read_manifest(workdir, "sources")["source_id"].tolist()
    workers = workers if workers is not None else cfg.clips.workers
    workers = max(1, min(workers or os.cpu_count() or 1, os.cpu_count() or 1, len(ids) or 1))
    summary = ClipsSummary(sources=len(ids), processed=0, skipped=0, failed=0)

    def settle(source_id: str, outcome: SourceClipsResult | BaseException) -> None:
        if isinstance(outcome, BaseException):
            summary.failed += 1
            summary.failures.append(f"{source_id}: {outcome}")
            record_failure(workdir, FailureRecord.from_exception(STAGE, source_id, outcome))
        else:
            clear_failure(workdir, STAGE, source_id)
            summary.skipped += outcome.skipped
            summary.processed += not outcome.skipped
        progress("clips: sources", summary.processed + summary.skipped + summary.failed, len(ids))

    progress("clips: sources", 0, len(ids))
    if workers == 1:
        for sid in ids:
            try:
                outcome = process_source(workdir, sid, cfg, progress)
            except Exception as exc:  # a failing source is recorded; the others go on
                outcome = exc
            settle(sid, outcome)
    else:
        _build_shared_models(cfg)
        wcfg = _worker_config(cfg, workers)
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(process_source, workdir, sid, wcfg): sid for sid in ids}
            for fut in as_completed(futures):
                exc = fut.exception()
                settle(futures[fut], exc if exc is not None else fut.result())
    summary.counts = merge_parts(workdir)
    return summary
