"""Shared box helpers for the detectors: aspect-keeping resize onto a padded canvas, and NMS."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import cv2
import numpy as np

EMPTY = np.empty((0, 5), dtype=np.float32)


class Canvas(NamedTuple):
    """A frame resized to ``new_h x new_w`` at the top-left of a zero ``height x width`` network input."""

    new_h: int
    new_w: int
    height: int
    width: int
    scale_y: float  # new_h / frame height
    scale_x: float  # new_w / frame width

    @classmethod
    def fit(cls, frame_h: int, frame_w: int, height: int, width: int) -> "Canvas":
        """The largest aspect-keeping fit of the frame into a fixed ``height x width`` input."""
        scale = min(height / frame_h, width / frame_w)
        new_h, new_w = _scaled(frame_h, scale), _scaled(frame_w, scale)
        return cls(new_h, new_w, height, width, new_h / frame_h, new_w / frame_w)

    @classmethod
    def long_side(cls, frame_h: int, frame_w: int, long_side: int, multiple: int) -> "Canvas":
        """Long side scaled to ``long_side``; the input's sides rounded up to ``multiple``."""
        scale = long_side / max(frame_h, frame_w)
        new_h, new_w = _scaled(frame_h, scale), _scaled(frame_w, scale)
        return cls(new_h, new_w, _round_up(new_h, multiple), _round_up(new_w, multiple),
                   new_h / frame_h, new_w / frame_w)

    def draw(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` resized onto the canvas (uint8, height x width x 3)."""
        canvas = np.zeros((self.height, self.width, 3), dtype=np.uint8)
        if frame.shape[:2] == (self.new_h, self.new_w):
            canvas[:self.new_h, :self.new_w] = frame
        else:
            canvas[:self.new_h, :self.new_w] = cv2.resize(frame, (self.new_w, self.new_h),
                                                          interpolation=cv2.INTER_LINEAR)
        return canvas

    def to_frame(self, x1, y1, x2, y2, score) -> np.ndarray:
        """Canvas-pixel box columns to (N, 5) float32 boxes in frame pixels."""
        return np.column_stack([x1 / self.scale_x, y1 / self.scale_y, x2 / self.scale_x, y2 / self.scale_y,
                                score]).astype(np.float32)


def _scaled(n: int, scale: float) -> int:
    return max(1, round(n * scale))


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def nms(dets: np.ndarray, score_threshold: float, iou_threshold: float) -> np.ndarray:
    """Keep boxes of ``dets`` (N, 5: x1 y1 x2 y2 score) by OpenCV's NMS, highest score first."""
    if len(dets) == 0:
        return EMPTY
    xywh = np.column_stack([dets[:, 0], dets[:, 1], dets[:, 2] - dets[:, 0], dets[:, 3] - dets[:, 1]])
    keep = cv2.dnn.NMSBoxes(xywh.astype(np.float64).tolist(), dets[:, 4].astype(float).tolist(),
                            score_threshold, iou_threshold)
    kept = dets[np.asarray(keep, dtype=np.int64).reshape(-1)]
    return kept[np.argsort(-kept[:, 4], kind="stable")].astype(np.float32, copy=False)


def clip_to_frame(dets: np.ndarray, height: int, width: int) -> np.ndarray:
    """Boxes clipped to the frame; boxes left empty are dropped."""
    dets[:, [0, 2]] = dets[:, [0, 2]].clip(0, width)
    dets[:, [1, 3]] = dets[:, [1, 3]].clip(0, height)
    return dets[(dets[:, 2] > dets[:, 0]) & (dets[:, 3] > dets[:, 1])]


def same_size_batches(frames: Sequence[np.ndarray], batch_size: int) -> Iterator[list[int]]:
    """Indices of ``frames`` in groups of at most ``batch_size`` frames of one size, in order."""
    by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
    for i, frame in enumerate(frames):
        by_shape[frame.shape[:2]].append(i)
    for indices in by_shape.values():
        for start in range(0, len(indices), batch_size):
            yield indices[start:start + batch_size]
