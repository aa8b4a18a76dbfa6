"""Shot boundaries with PySceneDetect 0.7's detectors, fed the shared decoded frames (no second decode)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scenedetect.common import FrameTimecode
from scenedetect.detectors import AdaptiveDetector, ContentDetector

from schemas.config import ShotsConfig
from schemas.records import ShotRecord


class ShotScorer:
    """Feed BGR frames in order with :meth:`add`; :meth:`cuts` returns the first frame of every new shot."""

    def __init__(self, cfg: ShotsConfig, fps: Fraction):
        self.fps = Fraction(fps)
        min_len = max(1, round(cfg.min_scene_len_s * float(self.fps)))  # frames: exact for both detectors
        if cfg.detector == "adaptive":
            self.detector = AdaptiveDetector(adaptive_threshold=cfg.adaptive_threshold, min_scene_len=min_len)
        else:
            self.detector = ContentDetector(threshold=cfg.content_threshold, min_scene_len=min_len)
        self._cuts: list[int] = []
        self._last = -1

    def add(self, index: int, frame_bgr: np.ndarray) -> None:
        if index != self._last + 1:
            raise ValueError(f"shot scoring needs every frame in order; got frame {index} after {self._last}")
        self._last = index
        self._cuts += [t.frame_num for t in self.detector.process_frame(FrameTimecode(index, fps=self.fps), frame_bgr)]

    def cuts(self) -> list[int]:
        if self._last >= 0:
            self._cuts += [t.frame_num for t in self.detector.post_process(FrameTimecode(self._last, fps=self.fps))]
        return sorted({c for c in self._cuts if 0 < c <= self._last})


def shots_from_cuts(source_id: str, cuts: list[int], num_frames: int, fps: Fraction) -> list[ShotRecord]:
    """Shots between consecutive cuts (end frame exclusive), with times in seconds."""
    bounds = [0, *[c for c in cuts if 0 < c < num_frames], num_frames]
    return [ShotRecord(source_id, i, a, b, float(a / fps), float(b / fps))
            for i, (a, b) in enumerate(zip(bounds, bounds[1:])) if b > a]
