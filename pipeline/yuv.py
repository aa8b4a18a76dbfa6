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
    """One plane resized; shrinking halves exactly while it can (OpenCV's fast path), then averages the rest."""
    while plane.shape[1] >= 2 * width and plane.shape[0] >= 2 * height and not (plane.shape[0] | plane.shape[1]) & 1:
        plane = cv2.resize(plane, (plane.shape[1] // 2, plane.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if plane.shape[:2] == (height, width):
        return plane
    interp = cv2.INTER_AREA if width <= plane.shape[1] else cv2.INTER_LINEAR
    return cv2.resize(plane, (width, height), interpolation=interp)


def resize(yuv: np.ndarray, width: int, height: int) -> np.ndarray:
    """The frame resized to even ``width`` x ``height``; the same array if unchanged."""
    if size(yuv) == (width, height):
        return yuv
    y, u, v = planes(yuv)
    return join(_plane(y, width, height), _plane(u, width // 2, height // 2), _plane(v, width // 2, height // 2))


def to_bgr(yuv: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420)


def to_rgb(yuv: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(yuv, cv2.COLOR_YUV2RGB_I420)


def region_bgr(yuv: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """BGR pixels of ``[y0, y1) x [x0, x1)`` inside the frame; equal to the same slice of :func:`to_bgr`."""
    ex0, ey0 = x0 & ~1, y0 & ~1  # chroma is shared by 2x2 pixel blocks: convert whole blocks
    ex1, ey1 = (x1 + 1) & ~1, (y1 + 1) & ~1
    y, u, v = planes(yuv)
    block = join(y[ey0:ey1, ex0:ex1], u[ey0 // 2:ey1 // 2, ex0 // 2:ex1 // 2], v[ey0 // 2:ey1 // 2, ex0 // 2:ex1 // 2])
    return to_bgr(block)[y0 - ey0:y1 - ey0, x0 - ex0:x1 - ex0]


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
