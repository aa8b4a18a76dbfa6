"""The clips stage: per source, one decode scan -> shots + faces -> tracks -> candidate selection -> export.

:class:`ClipsStage` is built once from the config (face settings resolved there) and called per source record
by the runner (:mod:`pipeline.run`), which keeps its rows in ``WORKDIR/parts/<source_id>/`` behind a completion
marker, records failures and merges. The decode scan is :mod:`pipeline.scan`; the frames held for export are
:mod:`pipeline.frames`; this module plans each closed shot's clips and has them cut by exporter processes, one
cut per window (the targets whose candidates have the same frames share it, and its scene clip).
"""

from __future__ import annotations

import os
import shutil
from collections import deque
from contextlib import contextmanager, suppress
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing import current_process, get_context
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from pipeline.decode import StreamInfo, open_info
from pipeline.expression import expression_enabled, face_scorer, frame_scores
from pipeline.export import SCENES_DIR, ClipFiles, cut_window, range_frames, scene_clip_path
from pipeline.faces import models_dir, resolve_faces
from pipeline.frames import FrameBuffer, FrameRing
from pipeline.models import ModelNotFoundError
from pipeline.progress import ProgressFn, no_progress
from pipeline.run import Outcome, RunSummary, run_all
from pipeline.scan import FaceScan, ShotCuts, scan
from pipeline.select import Candidate, select_candidates
from pipeline.shots import shot_record
from pipeline.tracks import build_tracks
from schemas.config import BuildConfig, ExportConfig, FacesConfig
from schemas.errors import UserError
from schemas.ids import clip_id as make_clip_id
from schemas.ids import config_hash, file_sha256
from schemas.ids import track_id as make_track_id
from schemas.manifests import in_workdir, read_records
from schemas.records import ClipRecord, RejectRecord, ShotRecord, SourceRecord, TrackRow

STAGE = "clips"
PARTS = {"shots": ["source_id", "shot_index"], "tracks": ["track_id", "frame"],
         "clips": ["source_id", "start_frame", "track_id"],
         "rejects": ["source_id", "start_frame", "track_id", "end_frame"]}
_RUNTIME_ONLY = {"models_dir", "device", "threads", "batch_size"}  # face settings that do not change results


class SourceMissing(UserError):
    """A source's video file is gone."""


class SourceChanged(UserError):
    """A source's video file is not the one acquired (its sha256 differs)."""


def stage_config_hash(cfg: BuildConfig) -> str:
    """Hash of the settings that shape a source's shots, tracks and clips (not runtime knobs); ``cfg.faces``
    as resolved (:func:`pipeline.faces.resolve_faces`)."""
    return config_hash({"shots": cfg.shots.model_dump(mode="json"),
                        "faces": cfg.faces.model_dump(mode="json", exclude=_RUNTIME_ONLY),
                        "tracks": cfg.tracks.model_dump(mode="json"), "select": cfg.select.model_dump(mode="json"),
                        "export": cfg.export.model_dump(mode="json"), "expression": expression_enabled(cfg)})


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
    """A closed shot's rows, waiting for its clips to be cut (one cut per window, shared by its targets)."""
    rows: _Rows  # its one shot row, its tracks and rejects; its clips once cut
    clips: list[tuple[str, Candidate, Future, int]]  # track id, candidate, its window's cut to come, its place there

    @property
    def record(self) -> ShotRecord:
        return self.rows.shots[0]

    def cuts(self) -> list[Future]:
        return list({id(future): future for _, _, future, _ in self.clips}.values())

    def done(self) -> bool:
        return all(future.done() for future in self.cuts())


def _plan(workdir: Path, source_id: str, info: StreamInfo, cfg: BuildConfig, record: ShotRecord,
          detections: dict[int, np.ndarray]) -> tuple[_Rows, list[tuple[str, Candidate, Path, np.ndarray]]]:
    """Tracks and candidate selection of one closed shot (its detections: frame -> (N, 6 + E) x1, y1, x2, y2,
    score, blur, E expression probabilities): its rows, and its clips to cut (track id, candidate, clip folder,
    per-frame boxes)."""
    rows, clips = _Rows(shots=[record]), []
    tracks = build_tracks(detections, (record.start_frame, record.end_frame), cfg.tracks, cfg.faces.stride)
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
# how much lower the exporter processes' scheduling priority is than the decoding process's: decoding is the path
# every frame waits on, while the exporters have slack (two closed shots queue for them), so on busy cores they
# take the time decoding leaves (on 2 cores: about 3% less wall time, the same CPU time)
EXPORTER_NICENESS = 10


def _start_exporter(ring: FrameRing) -> None:
    """In a new exporter process: the decoding process's frames, and a lower priority."""
    global _ring
    _ring = ring
    os.nice(EXPORTER_NICENESS)


def _cut(path: Path, scene_path: Path, targets: list[tuple[Path, np.ndarray]], start: int, slots: list[int] | None,
         info: StreamInfo, cfg: ExportConfig, ring: FrameRing | None = None) -> tuple[list[ClipFiles], list[Path]]:
    """One window's files (:func:`pipeline.export.cut_window`), from the frames in ``slots`` of ``ring`` (in an
    exporter process: the ring it shares with the decoding one), or by seeking if they were dropped. The targets'
    files, and the paths this call wrote."""
    ring = ring or _ring
    end = start + len(targets[0][1])
    frames = ((lambda: (ring.frame(slot) for slot in slots)) if slots is not None
              else (lambda: range_frames(path, start, end)))
    return cut_window(scene_path, targets, info.width, info.height, info.fps, cfg, frames)


def _clip_record(workdir: Path, row: SourceRecord, fps: Fraction, shot_index: int, tid: str, cand: Candidate,
                 files: ClipFiles) -> ClipRecord:
    rel = lambda p: str(Path(p).relative_to(workdir))  # noqa: E731
    return ClipRecord(
        clip_id=files.folder.name, source_id=row.source_id, scene=row.scene, scenario=row.scenario,
        track_id=tid, shot_index=shot_index, start_frame=cand.start, end_frame=cand.end,
        num_frames=cand.end - cand.start, start_s=float(cand.start / fps), end_s=float(cand.end / fps),
        fps=float(fps), box_x1=cand.box[0], box_y1=cand.box[1], box_x2=cand.box[2], box_y2=cand.box[3],
        face_px=cand.face_px, det_score=cand.det_score, detected_fraction=cand.detected_fraction, blur=cand.blur,
        scene_path=rel(files.scene_path), crop_path=rel(files.crop_path),
        still_path=rel(files.still_path) if files.still_path else None, frames_dir=rel(files.frames_dir),
        scene_frames_dir=rel(files.scene_frames_dir), sha256=files.sha256,
        predicted_expression=cand.expression, predicted_prob=cand.expression_prob, intensity=cand.intensity)


def _submit(exporter: Executor, path: Path, out_root: Path, clips: list[tuple[str, Candidate, Path, np.ndarray]],
            buffer: FrameBuffer, info: StreamInfo, cfg: ExportConfig, ring: FrameRing | None
            ) -> list[tuple[str, Candidate, Future, int]]:
    """Hand a shot's clips to the exporters, one cut per window: targets whose candidates have the same frames
    share it (and its scene clip). Each clip with its window's cut and its place among the window's targets."""
    windows: dict[tuple[int, int], list[int]] = {}
    for i, (_, cand, _, _) in enumerate(clips):
        windows.setdefault((cand.start, cand.end), []).append(i)
    cut_of: dict[int, tuple[Future, int]] = {}
    for (start, end), members in windows.items():
        future = exporter.submit(_cut, path, scene_clip_path(out_root, start, end),
                                 [(clips[i][2], clips[i][3]) for i in members], start, buffer.slots(start, end), info,
                                 cfg, ring)
        cut_of.update({i: (future, place) for place, i in enumerate(members)})
    return [(tid, cand, *cut_of[i]) for i, (tid, cand, _, _) in enumerate(clips)]


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _remove_stale(out_root: Path, clip_ids: set[str], scene_clips: set[str]) -> None:
    """Remove clip folders and scene clips of earlier, other selections from a source's clips folder."""
    for entry in (out_root.iterdir() if out_root.is_dir() else []):
        if entry.name == SCENES_DIR:
            for scene in entry.iterdir():
                if scene.name not in scene_clips:
                    _remove(scene)
        elif entry.name not in clip_ids:
            _remove(entry)


def _exporters(count: int, ring: FrameRing) -> tuple[Executor, FrameRing | None]:
    """The executor that cuts the clips of closed shots while the decoding process decodes and detects the next
    ones, and the ring to hand its tasks. Processes, forked (so sharing ``ring``) before the decoding thread
    starts: unlike threads, they never wait on the decoding process's interpreter lock; they run at a lower
    priority (:data:`EXPORTER_NICENESS`). Threads (given the ring) in a daemonic process, such as a Dask worker,
    which may not have children."""
    if current_process().daemon:
        return ThreadPoolExecutor(count, thread_name_prefix="export"), ring
    pool = ProcessPoolExecutor(count, mp_context=get_context("fork"), initializer=_start_exporter, initargs=(ring,))
    return pool, None


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


def _worker_config(cfg: BuildConfig, workers: int) -> BuildConfig:
    """Share the cores between worker processes' detectors, unless the config fixes the thread count. (One
    detector gets onnxruntime's default of one thread per core: it runs on the path every frame waits on, and at
    FERV39k's settings, every 2nd frame at 640 + 128 px, one thread instead of two on 2 cores made the stage 23%
    slower.)"""
    if workers <= 1 or cfg.faces.threads:
        return cfg
    faces = cfg.faces.model_copy(update={"threads": max(1, (os.cpu_count() or 1) // workers)})
    return cfg.model_copy(update={"faces": faces})


class ClipsStage:
    """Shots, tracks, selected clips (with files) and rejects of one source per call. Clips are exported shot by
    shot while the source is decoded, from the frames the decode scan holds (by the exporters of
    :func:`_exporters`). Built once: face settings resolved, the int8 model and the expression graph built, the
    settings' hash taken."""

    name = STAGE
    parts = PARTS
    into = ""
    key_columns: list[str] = []

    def __init__(self, workdir: str | Path, cfg: BuildConfig, progress: ProgressFn = no_progress):
        self.workdir = Path(workdir)
        self.cfg = cfg.model_copy(update={"faces": resolve_faces(cfg.faces)})
        self.stamp = stage_config_hash(self.cfg)
        self.progress = progress
        faces = self.cfg.faces
        if faces.backend == "centerface" and faces.precision == "int8":
            from pipeline.faces.quantize import int8_model

            with suppress(ModelNotFoundError):  # (a missing model is each source's failure to report)
                int8_model(models_dir(faces))
        if expression_enabled(self.cfg):  # converted here once, not by each worker (a session per process)
            from pipeline.expression.convert import onnx_model

            with suppress(ModelNotFoundError):
                onnx_model(models_dir(faces))

    def for_workers(self, workers: int) -> "ClipsStage":
        """This stage for a pool of ``workers`` processes: the cores shared between their detectors, no
        progress listener (it stays in this process)."""
        stage = object.__new__(ClipsStage)
        stage.__dict__.update(self.__dict__, cfg=_worker_config(self.cfg, workers), progress=no_progress)
        return stage

    def key(self, record: SourceRecord) -> str:
        return record.source_id

    def source_path(self, record: SourceRecord) -> Path:
        """The source's video, checked to be the one acquired."""
        path = in_workdir(self.workdir, record.path)
        if not path.is_file():
            raise SourceMissing(f"source {record.source_id}: video {path} does not exist; re-run `ferv acquire` "
                                "with the same URL list or folder (it fetches missing files again)")
        if record.sha256 and file_sha256(path) != record.sha256:
            raise SourceChanged(f"source {record.source_id}: video {path} differs from the one acquired (sha256); "
                                "re-run `ferv acquire` with the same URL list or folder to fetch it again")
        return path

    def __call__(self, record: SourceRecord) -> Outcome:
        workdir, cfg, source_id, progress = self.workdir, self.cfg, record.source_id, self.progress
        path = self.source_path(record)
        out_root, settings = clips_dir(workdir, source_id), workdir / "parts" / source_id / "CONFIG"
        if settings.is_file() and settings.read_text().strip() != self.stamp:  # clips cut with other settings
            shutil.rmtree(out_root, ignore_errors=True)
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(self.stamp + "\n")

        info = open_info(path)
        pending: deque[_Pending] = deque()
        rows, written = _Rows(), []

        def settle(shot: _Pending) -> None:  # in shot order: rows stay in order, frames are dropped behind
            for future in shot.cuts():
                written.extend(future.result()[1])
            for tid, cand, future, place in shot.clips:
                shot.rows.clips.append(_clip_record(workdir, record, info.fps, shot.record.shot_index, tid, cand,
                                                    future.result()[0][place]))
            rows.extend(shot.rows)
            buffer.drop_before(shot.record.end_frame)
            progress(f"{source_id}: clips", len(rows.clips), None)

        def make_room() -> None:  # the decode pass waits for pending clips rather than drop their frames
            while pending and buffer.full():
                settle(pending.popleft())

        buffer = FrameBuffer(FrameRing(info.width, info.height, cfg.clips.buffer_mb * 2**20), make_room)
        faces = FaceScan(_detector(cfg.faces), cfg.faces, info, face_scorer(cfg))
        shots: list[ShotRecord] = []
        exporter, ring = _exporters(cfg.clips.exporters, buffer.ring)
        try:
            with _single_threaded_opencv(), exporter:
                exporter.submit(int).result()  # starts them now, before the decoding thread
                try:
                    for end in scan(path, info, buffer, ShotCuts(cfg.shots, info), [faces], cfg.clips.decode_threads,
                                    progress, source_id):
                        detections = faces.take(end)
                        start = shots[-1].end_frame if shots else 0
                        shots.append(shot_record(source_id, len(shots), start, end, info.fps))
                        # two shots export while the next is decoded: running further ahead would only hold more
                        # frames, and touching fresh memory costs CPU time the exporters need
                        while len(pending) > 1 or (pending and pending[0].done()):
                            settle(pending.popleft())
                        shot_rows, clips = _plan(workdir, source_id, info, cfg, shots[-1], detections)
                        pending.append(_Pending(shot_rows, _submit(exporter, path, out_root, clips, buffer, info,
                                                                   cfg.export, ring)))
                    while pending:
                        settle(pending.popleft())
                finally:
                    for shot in pending:
                        for future in shot.cuts():
                            future.cancel()
        except BaseException:
            for shot in pending:  # cut, but not settled
                written.extend(p for f in shot.cuts() if f.done() and not f.cancelled() and f.exception() is None
                               for p in f.result()[1])
            for written_path in written:  # a failed source leaves no clip files of this run behind
                _remove(written_path)
            with suppress(OSError):  # nor an empty scene clips' folder
                (out_root / SCENES_DIR).rmdir()
            raise
        _remove_stale(out_root, {c.clip_id for c in rows.clips}, {Path(c.scene_path).name for c in rows.clips})
        frames = rows.shots[-1].end_frame if rows.shots else 0
        return Outcome(source_id, rows={name: getattr(rows, name) for name in PARTS},
                       stats={"frames": frames, "tracks": len({t.track_id for t in rows.tracks})})


def make_clips(workdir: str | Path, cfg: BuildConfig, progress: ProgressFn = no_progress,
               workers: int | None = None) -> RunSummary:
    """Run the clips stage over every source of ``sources.parquet`` (in parallel processes), record failures,
    then merge the parts."""
    workdir = Path(workdir)
    records = read_records(workdir, "sources")
    workers = workers if workers is not None else cfg.clips.workers
    workers = max(1, min(workers or os.cpu_count() or 1, os.cpu_count() or 1, len(records) or 1))
    return run_all(workdir, ClipsStage(workdir, cfg, progress), records, workers, progress=progress)
