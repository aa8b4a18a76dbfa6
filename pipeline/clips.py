"""The clips stage: per source, one decode pass -> shots + faces -> tracks -> candidate selection -> export.

Per-source results go to ``WORKDIR/parts/<source_id>/{shots,tracks,clips,rejects}.parquet`` with a completion
marker holding the hash of the settings that shape them; a source whose marker matches is skipped.
:func:`merge_parts` joins the parts into the top-level manifests; :func:`make_clips` runs every source of
``sources.parquet`` in worker processes and records a failing source in ``failures.parquet``.
"""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from pipeline.decode import FrameSize, fit_width, open_info, read_frames
from pipeline.export import cut_clip
from pipeline.media import VideoError
from pipeline.progress import ProgressFn, no_progress
from pipeline.select import blur_score, select_candidates
from pipeline.shots import ShotScorer, shots_from_cuts
from pipeline.tracks import Track, build_tracks
from schemas.config import BuildConfig, FacesConfig
from schemas.ids import clip_id as make_clip_id
from schemas.ids import config_hash
from schemas.ids import track_id as make_track_id
from schemas.manifests import SCHEMAS, clear_failure, read_manifest, record_failure, write_manifest
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
    """Hash of the settings that shape a source's shots, tracks and clips (not runtime knobs)."""
    return config_hash({"shots": cfg.shots.model_dump(mode="json"),
                        "faces": cfg.faces.model_dump(mode="json", exclude=_RUNTIME_ONLY),
                        "tracks": cfg.tracks.model_dump(mode="json"), "select": cfg.select.model_dump(mode="json"),
                        "export": cfg.export.model_dump(mode="json")})


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


@dataclass
class Analysis:
    fps: Fraction
    width: int
    height: int
    frames: int
    shots: list[ShotRecord]
    tracks: list[tuple[ShotRecord, Track]]


def analyse(path: Path, source_id: str, cfg: BuildConfig, progress: ProgressFn = no_progress) -> Analysis:
    """One decode pass: shot scoring on every frame, face detection every ``cfg.faces.stride`` frames; then
    tracks per shot."""
    info = open_info(path)
    shot_size = FrameSize(*fit_width(info.width, info.height, cfg.shots.downscale_width), "bgr24")
    face_w, face_h = fit_width(info.width, info.height, cfg.faces.det_sizes[0], long_side=True)
    face_size = FrameSize(face_w, face_h, "rgb24", cfg.faces.stride)
    to_source = np.array([info.width / face_w, info.height / face_h] * 2)
    scorer = ShotScorer(cfg.shots, info.fps)
    detector = _detector(cfg.faces)
    detections: dict[int, np.ndarray] = {}
    batch: list[tuple[int, np.ndarray]] = []

    def flush() -> None:
        for (index, image), dets in zip(batch, detector.detect([im for _, im in batch])):
            gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
            blur = [blur_score(gray, d) for d in dets]
            detections[index] = (np.column_stack([dets[:, :4] * to_source, dets[:, 4], blur]) if len(dets)
                                 else np.zeros((0, 6)))
        batch.clear()

    frames = 0
    for frame in read_frames(path, {"shots": shot_size, "faces": face_size}):
        scorer.add(frame.index, frame.images["shots"])
        if "faces" in frame.images:
            batch.append((frame.index, frame.images["faces"]))
            if len(batch) >= cfg.faces.batch_size:
                flush()
        frames = frame.index + 1
        if frames % 50 == 0:
            progress(f"{source_id}: frames", frames, info.declared_frames or None)
    flush()
    progress(f"{source_id}: frames", frames, info.declared_frames or None)
    if frames == 0 or (info.declared_frames and frames < MIN_DECODED_SHARE * info.declared_frames):
        raise VideoError(f"{path}: truncated: decoded {frames} of the {info.declared_frames} frames its header "
                         "declares; re-download or remove it")
    shots = shots_from_cuts(source_id, scorer.cuts(), frames, info.fps)
    tracks = [(shot, t) for shot in shots
              for t in build_tracks(detections, (shot.start_frame, shot.end_frame), cfg.tracks, cfg.faces.stride)]
    return Analysis(info.fps, info.width, info.height, frames, shots, tracks)


def _source_row(workdir: Path, source_id: str) -> pd.Series:
    sources = read_manifest(workdir, "sources")
    rows = sources[sources["source_id"] == source_id]
    if rows.empty:
        raise KeyError(f"source {source_id} is not in {workdir}/sources.parquet; run `ferv acquire` first")
    return rows.iloc[0]


def process_source(workdir: Path, source_id: str, cfg: BuildConfig,
                   progress: ProgressFn = no_progress) -> SourceClipsResult:
    """Shots, tracks, selected clips (with files) and rejects of one source, written as part files."""
    workdir = Path(workdir)
    marker, stamp = completion_marker(workdir, source_id), stage_config_hash(cfg)
    if marker.is_file() and marker.read_text().strip() == stamp:
        return SourceClipsResult(source_id, skipped=True)
    started = time.perf_counter()
    row = _source_row(workdir, source_id)
    path = Path(row["path"]) if Path(row["path"]).is_absolute() else workdir / row["path"]
    if not path.is_file():
        raise FileNotFoundError(f"source {source_id}: video {path} does not exist; re-run `ferv acquire`")
    parts, out_root = part_dir(workdir, source_id), clips_dir(workdir, source_id)
    marker.unlink(missing_ok=True)
    settings = parts / "CONFIG"
    if settings.is_file() and settings.read_text().strip() != stamp:  # clips cut with other settings
        shutil.rmtree(out_root, ignore_errors=True)
    parts.mkdir(parents=True, exist_ok=True)
    settings.write_text(stamp + "\n")

    result = analyse(path, source_id, cfg, progress)
    track_rows: list[TrackRow] = []
    clip_rows: list[ClipRecord] = []
    rejects: list[RejectRecord] = []
    planned: list[tuple[str, Track, ShotRecord, object]] = []
    ordinal: dict[int, int] = {}
    for shot, track in result.tracks:
        ordinal[shot.shot_index] = ordinal.get(shot.shot_index, -1) + 1
        tid = make_track_id(source_id, shot.shot_index, ordinal[shot.shot_index])
        track_rows += [TrackRow(tid, source_id, shot.shot_index, int(f), *map(float, b), float(s), bool(i))
                       for f, b, s, i in zip(track.frames, track.boxes, track.scores, track.interpolated)]
        kept, dropped = select_candidates(track, result.fps, cfg.select, source_id, tid, shot.shot_index,
                                          cfg.faces.stride)
        rejects += dropped
        planned += [(tid, track, shot, cand) for cand in kept]

    for done, (tid, track, shot, cand) in enumerate(planned, 1):
        cid = make_clip_id(source_id, cand.start, cand.end, tid)
        first = int(track.frames[0])
        files = cut_clip(path, cand.start, track.boxes[cand.start - first:cand.end - first], out_root / cid,
                         cfg.export, result.fps)
        rel = lambda p: str(Path(p).relative_to(workdir))  # noqa: E731
        clip_rows.append(ClipRecord(
            clip_id=cid, source_id=source_id, scene=row["scene"], scenario=row["scenario"], track_id=tid,
            shot_index=shot.shot_index, start_frame=cand.start, end_frame=cand.end, num_frames=cand.end - cand.start,
            start_s=float(cand.start / result.fps), end_s=float(cand.end / result.fps), fps=float(result.fps),
            box_x1=cand.box[0], box_y1=cand.box[1], box_x2=cand.box[2], box_y2=cand.box[3], face_px=cand.face_px,
            det_score=cand.det_score, detected_fraction=cand.detected_fraction, blur=cand.blur,
            scene_path=rel(files.scene_path), crop_path=rel(files.crop_path), frames_dir=rel(files.frames_dir),
            scene_frames_dir=rel(files.scene_frames_dir), sha256=files.sha256))
        progress(f"{source_id}: clips", done, len(planned))
    wanted = {c.clip_id for c in clip_rows}
    for stale in (out_root.iterdir() if out_root.is_dir() else []):  # clips of earlier, other selections
        if stale.name not in wanted:
            shutil.rmtree(stale, ignore_errors=True)

    for name, rows in (("shots", result.shots), ("tracks", track_rows), ("clips", clip_rows), ("rejects", rejects)):
        write_manifest(parts, name, rows)
    tmp = marker.with_name(".DONE.tmp")
    tmp.write_text(stamp + "\n")
    os.replace(tmp, marker)
    return SourceClipsResult(source_id, False, result.frames, len(result.shots), len(result.tracks), len(clip_rows),
                             len(rejects), time.perf_counter() - started)


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
        wcfg = _worker_config(cfg, workers)
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(process_source, workdir, sid, wcfg): sid for sid in ids}
            for fut in as_completed(futures):
                exc = fut.exception()
                settle(futures[fut], exc if exc is not None else fut.result())
    summary.counts = merge_parts(workdir)
    return summary
