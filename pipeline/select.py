"""Candidate clips from a track: windows of 0.5 to 2 s, quality checks; a dropped window keeps its reason."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from pipeline.tracks import Track
from schemas.config import SelectConfig
from schemas.ids import stable_hash
from schemas.records import RejectRecord


def blur_score(gray: np.ndarray, box: np.ndarray) -> float:
    """Variance of the Laplacian of the face region, resized to 64x64 so faces of any size compare."""
    h, w = gray.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box[:4])
    x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
    if x2 - x1 < 2 or y2 - y1 < 2:
        return 0.0
    face = cv2.resize(gray[y1:y2, x1:x2], (64, 64), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(face, cv2.CV_64F).var())


@dataclass(frozen=True)
class Candidate:
    """One window ``[start, end)`` of a track with its quality figures (source pixels)."""

    start: int
    end: int
    face_px: float
    det_score: float
    detected_fraction: float  # share of the frames the detector ran on (every ``stride``-th) with a detection
    blur: float
    box: tuple[float, float, float, float]  # union of the window's boxes


def _measure(track: Track, start: int, end: int, stride: int) -> Candidate:
    sl = slice(start - int(track.frames[0]), end - int(track.frames[0]))
    boxes, detected = track.boxes[sl], ~track.interpolated[sl]
    looked = max(1, sum(1 for f in range(start, end) if f % stride == 0))  # frames the detector ran on
    sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    blur = track.blur[sl][detected]
    return Candidate(start, end, float(np.median(sides)),
                     float(track.scores[sl][detected].mean()) if detected.any() else 0.0,
                     min(1.0, detected.sum() / looked), float(np.median(blur)) if len(blur) else 0.0,
                     (*map(float, boxes[:, :2].min(axis=0)), *map(float, boxes[:, 2:].max(axis=0))))


def _problem(c: Candidate, cfg: SelectConfig) -> tuple[str, str] | None:
    if c.face_px < cfg.min_face_px:
        return "small_face", f"face {c.face_px:.0f} px < {cfg.min_face_px} px"
    if c.detected_fraction < cfg.min_detected_fraction:
        return "few_detections", f"detected in {c.detected_fraction:.0%} of frames < {cfg.min_detected_fraction:.0%}"
    if c.det_score < cfg.min_det_score:
        return "low_score", f"mean score {c.det_score:.2f} < {cfg.min_det_score}"
    if c.blur < cfg.min_blur:
        return "blurry", f"blur {c.blur:.1f} < {cfg.min_blur}"
    return None


def frame_limits(cfg: SelectConfig, fps: Fraction) -> tuple[int, int]:
    """Shortest and longest clip in frames."""
    return math.ceil(cfg.min_duration_s * fps - 1e-9), max(1, math.floor(cfg.max_duration_s * fps + 1e-9))


def select_candidates(track: Track, fps: Fraction, cfg: SelectConfig, source_id: str, track_id: str,
                      shot_index: int, stride: int = 1) -> tuple[list[Candidate], list[RejectRecord]]:
    """Cut ``track`` into consecutive windows of at most the longest clip; keep the first
    ``cfg.max_clips_per_track`` that pass every check; every other window becomes a reject with its reason."""
    shortest, longest = frame_limits(cfg, Fraction(fps))
    first, end = int(track.frames[0]), int(track.frames[-1]) + 1
    windows = [(a, min(a + longest, end)) for a in range(first, end, longest)]
    kept: list[Candidate] = []
    rejects: list[RejectRecord] = []

    def reject(a: int, b: int, reason: str, detail: str) -> None:
        rejects.append(RejectRecord(candidate_id="cand-" + stable_hash("cand", source_id, track_id, a, b),
                                    source_id=source_id, track_id=track_id, shot_index=shot_index,
                                    start_frame=a, end_frame=b, reason=reason, detail=detail))

    for a, b in windows:
        if b - a < shortest:
            reject(a, b, "too_short", f"{b - a} frames < {shortest} ({cfg.min_duration_s} s)")
            continue
        cand = _measure(track, a, b, stride)
        if problem := _problem(cand, cfg):
            reject(a, b, *problem)
        elif len(kept) >= cfg.max_clips_per_track:
            reject(a, b, "track_limit", f"track already has {cfg.max_clips_per_track} clips")
        else:
            kept.append(cand)
    return kept, rejects
