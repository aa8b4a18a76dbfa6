"""Shot boundaries with PySceneDetect 0.7's detectors, fed the shared decoded frames (no second decode)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scenedetect.common import FrameTimecode
from scenedetect.detectors import AdaptiveDetector, ContentDetector

from schemas.config import ShotsConfig
from schemas.records import ShotRecord


class ShotScorer:
    """Feed BGR frames in order with :meth:`add`, which returns the cuts (first frames of new shots) the
    detector settles on as frames arrive; :meth:`finish` returns the cuts left at the end."""

    def __init__(self, cfg: ShotsConfig, fps: Fraction):
        self.fps = Fraction(fps)
        min_len = max(1, round(cfg.min_scene_len_s * float(self.fps)))  # frames: exact for both detectors
        if cfg.detector == "adaptive":
            self.detector = AdaptiveDetector(adaptive_threshold=cfg.adaptive_threshold, min_scene_len=min_len)
        else:
            self.detector = ContentDetector(threshold=cfg.content_threshold, min_scene_len=min_len)
        self._last = -1
        self._latest = 0  # the last cut handed out: later ones only, in order

    def add(self, index: int, frame_bgr: np.ndarray) -> list[int]:
        if index != self._last + 1:
            raise ValueError(f"shot scoring needs every frame in order; got frame {index} after {self._last}")
        self._last = index
        return self._new(self.detector.process_frame(FrameTimecode(index, fps=self.fps), frame_bgr))

    def finish(self) -> list[int]:
        if self._last < 0:
            return []
        return self._new(self.detector.post_process(FrameTimecode(self._last, fps=self.fps)))

    def _new(self, cuts: list[FrameTimecode]) -> list[int]:
        fresh = sorted({c.frame_num for c in cuts if self._latest < c.frame_num <= self._last})
        self._latest = fresh[-1] if fresh else self._latest
        return fresh


def shot_record(source_id: str, shot_index: int, start: int, end: int, fps: Fraction) -> ShotRecord:
    """Shot ``[start, end)`` (end frame exclusive), with times in seconds."""
    return ShotRecord(source_id, shot_index, start, end, float(start / fps), float(end / fps))
