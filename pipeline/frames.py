"""Decoded frames held for export: a ring of slots in memory shared with forked exporter processes, and the
buffer that hands out its slots to the decode pass (most recently freed first)."""

from __future__ import annotations

import mmap
from collections import deque
from typing import Callable

import numpy as np

from pipeline import yuv


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
