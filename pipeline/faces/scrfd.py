"""SCRFD (insightface) on ONNX Runtime: loaded through ``insightface.model_zoo.get_model``, decoded here.

Decoding is done here, vectorised over a batch, so that several detection sizes (one 640 pass misses
close-ups that fill the frame; a second small pass catches them) and batched inference on the GPU are simple.
SCRFD maps: per stride (8, 16, 32 [, 64, 128]) and per anchor location (x fastest, then y, anchors
innermost), a score, distances (left, top, right, bottom) in stride units from the anchor point
``(x * stride, y * stride)``, and optionally five landmarks (unused here).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipeline.faces.boxes import Canvas, clip_to_frame, nms, same_size_batches
from pipeline.faces.runtime import check_providers, requested_providers, session_options
from pipeline.models import ModelError, ModelNotFoundError
from schemas.config import FacesConfig

log = logging.getLogger(__name__)

INSIGHTFACE_MODELS = Path("~/.insightface/models")
DETECTOR_GLOBS = ("det_*.onnx", "scrfd*.onnx")
MULTIPLE = 32


def resolve_scrfd_model(name: str, models_dir: Path) -> Path:
    """``name`` as a path to a ``det_*.onnx``, or an insightface pack (buffalo_l, buffalo_sc, antelopev2)
    found in ``models_dir/<pack>`` or ``~/.insightface/models/<pack>`` (also one folder deeper)."""
    path = Path(name).expanduser()
    if path.suffix == ".onnx" or path.is_file():
        if not path.is_file():
            raise ModelNotFoundError(f"SCRFD model file {path} does not exist; set faces.scrfd_model to a "
                                     "det_*.onnx file or an insightface pack name, or use faces.backend: centerface")
        return path
    folders = scrfd_pack_folders(name, models_dir)
    if (found := find_in_packs(name, folders)) is not None:
        return found
    raise ModelNotFoundError(
        f"no SCRFD detector (det_*.onnx) of insightface pack {name!r} in {' or '.join(map(str, folders))}; unzip the "
        f"pack there (e.g. {folders[0]}/det_10g.onnx), set faces.scrfd_model to a det_*.onnx path, or use "
        "faces.backend: centerface (`ferv models fetch centerface`)")


def find_in_packs(name: str, folders: list[Path]) -> Path | None:
    """The first SCRFD detector file of pack ``name`` in ``folders`` (or one folder deeper), else None."""
    for folder in folders:
        for candidate in (folder, folder / name):
            found = sorted(p for pattern in DETECTOR_GLOBS for p in candidate.glob(pattern))
            if found:
                return found[0]
    return None


def scrfd_pack_folders(pack: str, models_dir: Path) -> list[Path]:
    """Where an insightface pack is looked for: ``models_dir/<pack>``, then ``~/.insightface/models/<pack>``."""
    return [root / pack for root in (Path(models_dir).expanduser(), INSIGHTFACE_MODELS.expanduser())]


class ScrfdDetector:
    """Runs every size of ``cfg.det_sizes`` (long side) and merges the boxes by NMS."""

    name = "scrfd"

    def __init__(self, cfg: FacesConfig, models_dir: Path):
        from insightface.model_zoo import get_model

        path = resolve_scrfd_model(cfg.scrfd_model, models_dir)
        requested = requested_providers(cfg)
        model = get_model(str(path), providers=requested, sess_options=session_options(cfg),
                          static_shape_sessions=False)
        if model is None or getattr(model, "taskname", None) != "detection":
            raise ModelError(f"{path} is not an SCRFD face detector (insightface routes it to "
                             f"{type(model).__name__}); point faces.scrfd_model at the pack's det_*.onnx")
        self.session = model.session
        self.providers = check_providers(self.session, requested, f"SCRFD ({path})")
        self.input_name = model.input_name
        self.output_names = list(model.output_names)
        self.strides = list(model._feat_stride_fpn)
        self.num_anchors = model._num_anchors
        self.mean, self.std = float(model.input_mean), float(model.input_std)
        self.dtype = getattr(model, "input_dtype", np.float32)  # uint8 for packs that normalise inside
        self.score_threshold = cfg.score_threshold
        self.nms_threshold = cfg.nms_threshold
        self.fixed_size = model.static_input_size  # (width, height) when the graph fixes it
        self.det_sizes = [max(self.fixed_size)] if self.fixed_size else list(cfg.det_sizes)
        if self.fixed_size and len(cfg.det_sizes) > 1:
            log.warning("SCRFD model %s has a fixed %sx%s input: faces.det_sizes %s cannot be honoured, one pass "
                        "at that size may miss close-ups filling the frame", path, *self.fixed_size, cfg.det_sizes)
        batch_dim = self.session.get_inputs()[0].shape[0]
        self.batch_size = cfg.batch_size if model.batched and not isinstance(batch_dim, int) else 1

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        found: list[list[np.ndarray]] = [[] for _ in frames]
        for size in self.det_sizes:
            for chunk in same_size_batches(frames, self.batch_size):
                for i, dets in zip(chunk, self._detect_same_size([frames[i] for i in chunk], size)):
                    found[i].append(dets)
        return [nms(clip_to_frame(np.concatenate(d), *f.shape[:2]), self.score_threshold, self.nms_threshold)
                for d, f in zip(found, frames)]

    def _canvas(self, height: int, width: int, size: int) -> Canvas:
        if self.fixed_size is None:
            return Canvas.long_side(height, width, size, MULTIPLE)
        fixed_w, fixed_h = self.fixed_size
        return Canvas.fit(height, width, fixed_h, fixed_w)

    def _detect_same_size(self, frames: list[np.ndarray], size: int) -> list[np.ndarray]:
        """Boxes (N, 5) per frame, before NMS, in frame coordinates."""
        canvas = self._canvas(*frames[0].shape[:2], size)
        batch = np.stack([canvas.draw(f) for f in frames])
        blob = ((batch.transpose(0, 3, 1, 2).astype(np.float32) - self.mean) / self.std).astype(self.dtype)
        outs = self.session.run(self.output_names, {self.input_name: blob})
        levels = len(self.strides)
        per_frame: list[list[np.ndarray]] = [[] for _ in frames]
        for level, stride in enumerate(self.strides):
            scores = outs[level].reshape(len(frames), -1)
            dist = outs[level + levels].reshape(len(frames), -1, 4)
            b, k = np.nonzero(scores >= self.score_threshold)
            x, y = anchor_points(canvas.height // stride, canvas.width // stride, stride, self.num_anchors)[k].T
            left, top, right, bottom = (dist[b, k] * stride).T
            dets = canvas.to_frame(x - left, y - top, x + right, y + bottom, scores[b, k])
            for i in range(len(frames)):
                per_frame[i].append(dets[b == i])
        return [np.concatenate(d) for d in per_frame]


@lru_cache(maxsize=64)
def anchor_points(rows: int, cols: int, stride: int, anchors: int) -> np.ndarray:
    """(rows * cols * anchors, 2) anchor points x, y: x fastest, then y, each repeated per anchor."""
    ys, xs = np.mgrid[:rows, :cols]
    points = np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float32) * stride
    return np.repeat(points, anchors, axis=0)
