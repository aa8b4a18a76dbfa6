"""Decoded frames as I420 (planar YUV 4:2:0) numpy arrays, shape ``(height * 3 // 2, width)``, even sides.

Decoders hand out YUV; keeping frames in it until a consumer needs something else saves a full-frame colour
conversion per frame: shrinking works on the planes, and only small images (shot-scoring frames, detector
inputs, face-crop regions) are converted to BGR or RGB (OpenCV, BT.601 limited range, as ffmpeg's default).
"""

from __future__ import annotations

import cv2
import numpy as np


def size(yuv: np.ndarray) -> tuple[int, int]:
    """``(width, height)`` of an I420 frame."""
    return yuv.shape[1], yuv.shape[0] * 2 // 3


def planes(yuv: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y (h x w), U and V (h/2 x w/2) planes."""
    w, h = size(yuv)
    chroma = yuv[h:].reshape(2, h // 2, w // 2)
    return yuv[:h], chroma[0], chroma[1]


def join(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """One I420 array from its planes."""
    h, w = y.shape
    return np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(h * 3 // 2, w)


def _plane(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """One plane resized (area averaging to shrink, bilinear to grow); the same array if unchanged."""
    if plane.shape[:2] == (height, width):
        return plane
    interp = cv2.INTER_AREA if width <= plane.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(plane, (width, height), interpolation=interp)


def _resize(yuv: np.ndarray, width: int, height: int) -> np.ndarray:
    if size(yuv) == (width, height):
        return yuv
    y, u, v = planes(yuv)
    return join(_plane(y, width, height), _plane(u, width // 2, height // 2), _plane(v, width // 2, height // 2))


class Pyramid:
    """A decoded I420 frame and its exact 2x halvings (OpenCV's fast path), each made once, when first wanted:
    every consumer of the frame (shot scoring, the detector, scene clips, face crops) shrinks from the
    smallest level still at least its size, so a frame is halved once however many consumers it has.
    Halving goes on while both sides stay multiples of 4 (the halves' chroma planes stay whole)."""

    def __init__(self, frame: np.ndarray):
        self.levels = [frame]
        self._sized: dict[tuple[int, int], np.ndarray] = {}

    @property
    def frame(self) -> np.ndarray:
        return self.levels[0]

    def level(self, k: int) -> np.ndarray | None:
        """Level ``k`` (the frame halved ``k`` times), or None when the frame does not halve that often."""
        while len(self.levels) <= k:
            w, h = size(self.levels[-1])
            if w % 4 or h % 4:
                return None
            self.levels.append(_resize(self.levels[-1], w // 2, h // 2))
        return self.levels[k]

    def deepest(self, width: int, height: int) -> int:
        """The index of the smallest level at least ``width`` x ``height``."""
        k = 0
        while (nxt := self.level(k + 1)) is not None and size(nxt)[0] >= width and size(nxt)[1] >= height:
            k += 1
        return k

    def resize(self, width: int, height: int) -> np.ndarray:
        """The frame at even ``width`` x ``height`` (made once per size; callers must not write into it)."""
        if (width, height) not in self._sized:
            self._sized[(width, height)] = _resize(self.levels[self.deepest(width, height)], width, height)
        return self._sized[(width, height)]

    @property
    def nbytes(self) -> int:
        return sum({id(a): a.nbytes for a in [*self.levels, *self._sized.values()]}.values())


def to_bgr(yuv: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420)


def to_rgb(yuv: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420)


def bgr_to_yuv(colour: tuple[int, int, int]) -> tuple[int, int, int]:
    """The Y, U, V values of a BGR colour."""
    block = cv2.cvtColor(np.full((2, 2, 3), colour, np.uint8), cv2.COLOR_BGR2YUV_I420).reshape(-1)
    return int(block[0]), int(block[4]), int(block[5])


def draw_box(y: np.ndarray, u: np.ndarray, v: np.ndarray, box: tuple[int, int, int, int],
             colour_yuv: tuple[int, int, int], thickness: int) -> None:
    """Draw a rectangle outline into a frame's Y, U and V planes (see :func:`planes`), in place."""
    x1, y1, x2, y2 = box
    cv2.rectangle(y, (x1, y1), (x2, y2), colour_yuv[0], thickness)
    half = (x1 // 2, y1 // 2), (x2 // 2, y2 // 2), max(1, thickness // 2)
    cv2.rectangle(u, half[0], half[1], colour_yuv[1], half[2])
    cv2.rectangle(v, half[0], half[1], colour_yuv[2], half[2])
