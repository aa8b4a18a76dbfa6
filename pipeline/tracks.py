"""Face tracks within one shot (never across a cut): deterministic greedy IoU matching, linear
interpolation over detection gaps, and moving-average box smoothing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from schemas.config import TracksConfig


@dataclass
class Track:
    """One face through consecutive frames of a shot; arrays are aligned with ``frames``."""

    frames: np.ndarray  # int, consecutive
    boxes: np.ndarray  # (F, 4) smoothed x1, y1, x2, y2
    scores: np.ndarray  # (F,) detector score, interpolated between detections
    interpolated: np.ndarray  # (F,) bool: no detection on this frame
    blur: np.ndarray  # (F,) variance of Laplacian of the detected face; NaN where interpolated
    expression: np.ndarray | None = None  # (F, 7) expression probabilities of the detected face; NaN elsewhere


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` (N, 4+) and ``b`` (M, 4+)."""
    a, b = np.asarray(a, float)[:, None, :4], np.asarray(b, float)[None, :, :4]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def _link(detections: dict[int, np.ndarray], cfg: TracksConfig, stride: int) -> list[list[tuple[int, np.ndarray]]]:
    """Greedy matching, highest IoU first, of each frame's detections to the live tracks' last boxes."""
    live: list[list[tuple[int, np.ndarray]]] = []
    done: list[list[tuple[int, np.ndarray]]] = []
    for frame in sorted(detections):
        for t in [t for t in live if frame - t[-1][0] > cfg.max_gap_frames + stride]:
            live.remove(t)
            done.append(t)
        dets = detections[frame]
        used: set[int] = set()
        if live and len(dets):
            iou = iou_matrix(np.array([t[-1][1] for t in live]), dets)
            taken: set[int] = set()
            for flat in np.argsort(-iou, axis=None, kind="stable"):
                ti, di = divmod(int(flat), len(dets))
                if iou[ti, di] < cfg.iou_threshold:
                    break
                if ti not in taken and di not in used:
                    live[ti].append((frame, dets[di]))
                    taken.add(ti)
                    used.add(di)
        live += [[(frame, dets[di])] for di in range(len(dets)) if di not in used]
    return done + live


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average; the window shrinks at the ends so the first and last boxes stay put."""
    if window <= 1 or len(values) < 3:
        return values.copy()
    out = np.empty_like(values)
    half = window // 2
    for i in range(len(values)):
        r = min(half, i, len(values) - 1 - i)
        out[i] = values[i - r:i + r + 1].mean(axis=0)
    return out


def _fill(points: list[tuple[int, np.ndarray]], shot: tuple[int, int], hold: int, window: int) -> Track:
    frames_det = np.array([f for f, _ in points])
    dets = np.array([d for _, d in points], dtype=float)
    first, last = max(shot[0], frames_det[0] - hold), min(shot[1] - 1, frames_det[-1] + hold)
    frames = np.arange(first, last + 1)
    cols = [np.interp(frames, frames_det, dets[:, k]) for k in range(5)]  # holds the end values beyond the ends
    boxes = np.stack(cols[:4], axis=1)
    detected = np.isin(frames, frames_det)
    blur = np.full(len(frames), np.nan)
    blur[np.searchsorted(frames, frames_det)] = dets[:, 5]
    expression = np.full((len(frames), dets.shape[1] - 6), np.nan)  # columns after blur: expression scores
    expression[np.searchsorted(frames, frames_det)] = dets[:, 6:]
    return Track(frames, _smooth(boxes, window), cols[4], ~detected, blur, expression)


def build_tracks(detections: dict[int, np.ndarray], shot: tuple[int, int], cfg: TracksConfig,
                 stride: int = 1) -> list[Track]:
    """Tracks of one shot ``[start, end)`` from per-frame detections ``(N, 6 + E)``: x1, y1, x2, y2, score, blur,
    then E expression probabilities (none when scoring is off).

    Detections every ``stride`` frames; a track is extended by up to ``stride - 1`` frames at each end (held
    boxes, inside the shot). Tracks shorter than ``cfg.min_track_frames`` are dropped. Order: by first frame,
    then left edge."""
    inside = {f: d for f, d in detections.items() if shot[0] <= f < shot[1]}
    tracks = [_fill(points, shot, stride - 1, cfg.smoothing_window) for points in _link(inside, cfg, stride)]
    tracks = [t for t in tracks if len(t.frames) >= cfg.min_track_frames]
    return sorted(tracks, key=lambda t: (int(t.frames[0]), float(t.boxes[0, 0])))
