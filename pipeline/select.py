"""Candidate clips from a track: windows of 0.5 to 2 s, quality checks; a dropped window keeps its reason."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from pipeline.expression import EXPRESSIONS, NEUTRAL
from pipeline.expression import summary as expression_summary
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
    """One window ``[start, end)`` of a track with its quality figures (source pixels) and, where the track has
    expression scores, the model's summary of it (the mean of its scored frames)."""

    start: int
    end: int
    face_px: float
    det_score: float
    detected_fraction: float  # share of the frames the detector ran on (every ``stride``-th) with a detection
    blur: float
    box: tuple[float, float, float, float]  # union of the window's boxes
    expression: str | None = None  # the model's top expression
    expression_prob: float | None = None  # its mean probability
    intensity: float | None = None  # 1 - mean P(Neutral)


def _measure(track: Track, start: int, end: int, stride: int) -> Candidate:
    sl = slice(start - int(track.frames[0]), end - int(track.frames[0]))
    boxes, detected = track.boxes[sl], ~track.interpolated[sl]
    looked = max(1, sum(1 for f in range(start, end) if f % stride == 0))  # frames the detector ran on
    sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    blur = track.blur[sl][detected]
    scores = track.expression[sl][detected] if track.expression is not None else np.zeros((0, 7))
    return Candidate(start, end, float(np.median(sides)),
                     float(track.scores[sl][detected].mean()) if detected.any() else 0.0,
                     min(1.0, detected.sum() / looked), float(np.median(blur)) if len(blur) else 0.0,
                     (*map(float, boxes[:, :2].min(axis=0)), *map(float, boxes[:, 2:].max(axis=0))),
                     *expression_summary(scores))


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


PLATEAU = 0.05  # probabilities this close to a run's highest count as its peak


@dataclass(frozen=True)
class Window:
    """A proposed window ``[start, end)`` and why it was proposed."""

    start: int
    end: int
    why: str  # expression: around a run of one top expression; spread: evenly over the track; tile: fallback


def spread_windows(first: int, end: int, count: int, shortest: int, longest: int) -> list[Window]:
    """Up to ``count`` windows spread evenly over ``[first, end)``: the span cut into ``k`` equal parts, each
    holding one window of up to ``longest`` frames centred in it (``k`` as many as fit with at least
    ``shortest`` frames each)."""
    n = end - first
    k = max(1, min(count, math.ceil(n / longest), n // max(1, shortest)))
    part = n / k
    length = max(1, min(longest, math.floor(part)))
    out = []
    for j in range(k):
        a = first + int(round((j + 0.5) * part - length / 2))
        a = min(max(first, a), end - length)
        out.append(Window(a, a + length, "spread"))
    return out


@dataclass(frozen=True)
class Run:
    """Consecutive scored frames of a track with one top expression."""

    first: int  # first and last scored frame
    last: int
    peak: int  # the middle of the frames within PLATEAU of the run's highest probability of its expression
    expression: int  # index into EXPRESSIONS
    weight: float  # peak intensity 1 - P(Neutral); 0 for a neutral run


def expression_runs(frames: np.ndarray, probabilities: np.ndarray, smooth: int = 3) -> list[Run]:
    """Runs of one top expression over the scored frames (``frames`` ascending, ``probabilities`` (F, 7), the
    model's scores averaged over ``smooth`` neighbours to damp flicker); a change of the top class starts a run."""
    if not len(frames):
        return []
    kernel = np.ones(smooth) / smooth if smooth > 1 and len(frames) >= smooth else np.ones(1)
    smoothed = np.column_stack([np.convolve(np.pad(probabilities[:, k], len(kernel) // 2, mode="edge"), kernel,
                                            mode="valid") for k in range(probabilities.shape[1])])
    top = smoothed.argmax(axis=1)
    runs, begin = [], 0
    for i in range(1, len(frames) + 1):
        if i == len(frames) or top[i] != top[begin]:
            cls = int(top[begin])
            run = smoothed[begin:i, cls]
            plateau = np.flatnonzero(run >= run.max() - PLATEAU)
            peak = begin + int(plateau[len(plateau) // 2])
            weight = 0.0 if cls == NEUTRAL else float(1.0 - smoothed[begin:i, NEUTRAL].min())
            runs.append(Run(int(frames[begin]), int(frames[i - 1]), int(frames[peak]), cls, weight))
            begin = i
    return runs


def expression_windows(track: Track, stride: int, shortest: int, longest: int) -> list[Window]:
    """Windows around the track's expression events: one per run of one top expression (a change of the top
    expression starts a new run), centred on the run's peak, as long as the run (between ``shortest`` and
    ``longest`` frames). Order: the strongest run of each expression first (the strongest expressions first,
    neutral last), then the other runs by strength."""
    if track.expression is None or not track.expression.shape[1]:
        return []
    scored = ~np.isnan(track.expression).any(axis=1)
    frames = track.frames[scored]
    first, end = int(track.frames[0]), int(track.frames[-1]) + 1
    windows: list[tuple[int, int, Window]] = []  # (not the first of its expression, order, window)
    seen: set[int] = set()
    for run in sorted(expression_runs(frames, track.expression[scored]), key=lambda r: (-r.weight, r.first)):
        span = min(end, run.last + stride) - run.first
        length = min(longest, max(shortest, span), end - first)
        a = run.peak - length // 2
        if span >= length:  # keep the window inside its run
            a = min(max(run.first, a), run.first + span - length)
        a = min(max(first, a), end - length)
        window = Window(a, a + length, f"expression {EXPRESSIONS[run.expression]}")
        windows.append((int(run.expression in seen), len(windows), window))
        seen.add(run.expression)
    return [w for _, _, w in sorted(windows)]


def gaps(first: int, end: int, taken: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``[first, end)`` that no window of ``taken`` covers, longest first."""
    out, at = [], first
    for a, b in sorted(taken):
        if a > at:
            out.append((at, a))
        at = max(at, b)
    if end > at:
        out.append((at, end))
    return sorted(out, key=lambda g: (g[0] - g[1], g[0]))


def select_candidates(track: Track, fps: Fraction, cfg: SelectConfig, source_id: str, track_id: str,
                      shot_index: int, stride: int = 1) -> tuple[list[Candidate], list[RejectRecord]]:
    """At most ``cfg.max_clips_per_track`` non-overlapping windows spread over the whole track: first around its
    expression events (:func:`expression_windows`, where it has scores); then windows spread evenly
    (:func:`spread_windows`) over the parts still free, longest part first; then, as a fallback for windows
    that fail a check, the track cut into consecutive windows of the longest length. Every proposed window
    not kept becomes a reject with its reason."""
    shortest, longest = frame_limits(cfg, Fraction(fps))
    first, end = int(track.frames[0]), int(track.frames[-1]) + 1
    kept: list[Candidate] = []
    rejects: list[RejectRecord] = []
    seen: set[tuple[int, int]] = set()

    def reject(a: int, b: int, reason: str, detail: str) -> None:
        rejects.append(RejectRecord(candidate_id="cand-" + stable_hash("cand", source_id, track_id, a, b),
                                    source_id=source_id, track_id=track_id, shot_index=shot_index,
                                    start_frame=a, end_frame=b, reason=reason, detail=detail))

    def consider(w: Window) -> None:
        a, b = w.start, w.end
        if (a, b) in seen:
            return
        seen.add((a, b))
        if b - a < shortest:
            reject(a, b, "too_short", f"{b - a} frames < {shortest} ({cfg.min_duration_s} s)")
        elif len(kept) >= cfg.max_clips_per_track:
            reject(a, b, "track_limit", f"track already has {cfg.max_clips_per_track} clips ({w.why} window)")
        elif clash := next((c for c in kept if a < c.end and c.start < b), None):
            reject(a, b, "overlap", f"overlaps the kept clip [{clash.start}, {clash.end}) ({w.why} window)")
        elif problem := _problem(cand := _measure(track, a, b, stride), cfg):
            reject(a, b, *problem)
        else:
            kept.append(cand)

    for w in expression_windows(track, stride, shortest, longest):
        consider(w)
    for g0, g1 in gaps(first, end, [(c.start, c.end) for c in kept]):
        if g1 - g0 >= shortest or not kept:
            for w in spread_windows(g0, g1, max(1, cfg.max_clips_per_track - len(kept)), shortest, longest):
                consider(w)
    for a in range(first, end, longest):
        consider(Window(a, min(a + longest, end), "tile"))
    return sorted(kept, key=lambda c: c.start), rejects
