"""Decoded frames in I420 (planar YUV 4:2:0), even-sided: one numpy array of shape ``(height * 3 // 2, width)``,
or its Y, U and V planes (:data:`Planes`, such as views of a decoder's frame).

Decoders hand out YUV; keeping frames in it until a consumer needs something else saves a full-frame colour
conversion per frame: shrinking works on the planes, and only small images (shot-scoring frames, detector
inputs, face-crop regions) are converted to BGR or RGB (OpenCV, BT.601 limited range, as ffmpeg's default).
"""

from __future__ import annotations

import cv2
import numpy as np


Planes = tuple[np.ndarray, np.ndarray, np.ndarray]  # Y (h x w), U and V (h/2 x w/2); rows may be padded


def size(yuv: np.ndarray) -> tuple[int, int]:
    """``(width, height)`` of an I420 frame."""
    return yuv.shape[1], yuv.shape[0] * 2 // 3


def planes(yuv: np.ndarray) -> Planes:
    """Views of the Y (h x w), U and V (h/2 x w/2) planes."""
    w, h = size(yuv)
    chroma = yuv[h:].reshape(2, h // 2, w // 2)
    return yuv[:h], chroma[0], chroma[1]


def join(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """One I420 array from its planes."""
    return _resize((y, u, v), y.shape[1], y.shape[0])


def interpolation(src_side: int, dst_side: int) -> int:
    """Area averaging to shrink 2x or more; bilinear under 2x (it still reads every source pixel, and is much
    faster) and to grow."""
    return cv2.INTER_AREA if src_side >= 2 * dst_side else cv2.INTER_LINEAR


def resize_into(src: Planes, out: np.ndarray) -> np.ndarray:
    """The planes resized (or copied, where the sizes match) into the I420 array ``out``."""
    for dst, plane in zip(planes(out), src):
        if plane.shape == dst.shape:
            dst[...] = plane
        else:
            cv2.resize(plane, dst.shape[::-1], dst=dst, interpolation=interpolation(plane.shape[1], dst.shape[1]))
    return out


def _resize(src: Planes, width: int, height: int) -> np.ndarray:
    return resize_into(src, np.empty((height * 3 // 2, width), np.uint8))


class Pyramid:
    """A decoded I420 frame and its exact 2x halvings (OpenCV's fast path), each made once, when first wanted:
    every consumer of the frame (shot scoring, the detector, scene clips, face crops) shrinks from the
    smallest level still at least its size, so a frame is halved once however many consumers it has.
    Halving goes on while both sides stay multiples of 4 (the halves' chroma planes stay whole). The frame may
    be an I420 array or the plane views of a decoder's frame (no copy)."""

    @staticmethod
    def halves(width: int, height: int) -> bool:
        """Whether a level of this size has a next one."""
        return width % 4 == 0 and height % 4 == 0

    def __init__(self, frame: np.ndarray | Planes, *halvings: np.ndarray):
        """``halvings``: the frame's exact halvings already made (I420 arrays), the first one first."""
        self.levels: list[Planes] = [planes(frame) if isinstance(frame, np.ndarray) else tuple(frame)]
        self._sized: dict[tuple[int, int], np.ndarray] = {}  # I420 arrays by size (halvings included)
        if isinstance(frame, np.ndarray):
            self._sized[size(frame)] = frame
        for half in halvings:
            self._sized[size(half)] = half
            self.levels.append(planes(half))

    @property
    def size(self) -> tuple[int, int]:
        return self.levels[0][0].shape[::-1]

    def level(self, k: int) -> Planes | None:
        """Level ``k`` (the frame halved ``k`` times), or None when the frame does not halve that often."""
        while len(self.levels) <= k:
            h, w = self.levels[-1][0].shape
            if not self.halves(w, h):
                return None
            self._sized[(w // 2, h // 2)] = half = _resize(self.levels[-1], w // 2, h // 2)
            self.levels.append(planes(half))
        return self.levels[k]

    def deepest(self, width: int, height: int) -> int:
        """The index of the smallest level at least ``width`` x ``height`` (levels beyond it are not made)."""
        k, (h, w) = 0, self.levels[0][0].shape
        while self.halves(w, h) and w // 2 >= width and h // 2 >= height:
            k, w, h = k + 1, w // 2, h // 2
        return k

    def planes_at(self, width: int, height: int) -> Planes:
        """The frame's planes at even ``width`` x ``height``: a level's own where one has that size (no copy),
        else :meth:`resize`'s. Callers must not write into them."""
        level = self.level(self.deepest(width, height))
        return level if level[0].shape == (height, width) else planes(self.resize(width, height))

    def resize(self, width: int, height: int) -> np.ndarray:
        """The frame as one I420 array of even ``width`` x ``height`` (made once per size, a copy where the
        decoder's frame has that size; callers must not write into it)."""
        if (width, height) not in self._sized:
            self._sized[(width, height)] = _resize(self.level(self.deepest(width, height)), width, height)
        return self._sized[(width, height)]


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
