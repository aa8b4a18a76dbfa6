"""Face detection behind one small interface, with two ONNX Runtime backends (CenterFace, SCRFD).

``load_detector(cfg)`` returns a :class:`FaceDetector`; ``detect(frames)`` takes RGB uint8 frames of any
size and returns, per frame, a float32 ``(N, 5)`` array ``x1, y1, x2, y2, score`` in that frame's pixels,
scores at or above ``cfg.score_threshold``, after non-maximum suppression.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from schemas.config import FacesConfig

DEFAULT_MODELS_DIR = Path("~/.cache/ferv/models")


class FaceDetector(Protocol):
    name: str
    providers: list[str]  # onnxruntime providers actually in use

    def detect(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Per frame, a float32 (N, 5) array of x1, y1, x2, y2, score in that frame's pixel coordinates."""
        ...


def models_dir(cfg: FacesConfig | None = None) -> Path:
    """Where models live: ``cfg.models_dir``, else ``$FERV_MODELS_DIR``, else ``~/.cache/ferv/models``."""
    chosen = (cfg.models_dir if cfg is not None else None) or os.environ.get("FERV_MODELS_DIR")
    return Path(chosen or DEFAULT_MODELS_DIR).expanduser()


def resolve_faces(cfg: FacesConfig) -> FacesConfig:
    """``auto`` settings made concrete. ``backend``: ``scrfd`` when ``cfg.scrfd_model`` (a det_*.onnx path, or an
    insightface pack in the models directory) is present, the production default; else ``centerface``, the
    CPU/offline default. ``precision``: ``int8`` for CenterFace on the CPU, else ``fp32``. Detection sizes left
    unset take the chosen backend's defaults."""
    backend, precision = cfg.backend, cfg.precision
    if backend == "auto":
        from pipeline.faces.scrfd import find_in_packs

        path = Path(cfg.scrfd_model).expanduser()
        present = (path.is_file() if path.suffix == ".onnx"
                   else find_in_packs(cfg.scrfd_model, [models_dir(cfg) / cfg.scrfd_model]))
        backend = "scrfd" if present else "centerface"
    if precision == "auto":
        from pipeline.faces.runtime import uses_cuda

        precision = "int8" if backend == "centerface" and not uses_cuda(cfg) else "fp32"
    if backend != "centerface" and precision == "int8":
        raise ValueError(f"faces.precision int8 is built for centerface only; use fp32 (or auto) with {backend}")
    return FacesConfig.model_validate({**cfg.model_dump(), "backend": backend, "precision": precision})


def load_detector(cfg: FacesConfig) -> FaceDetector:
    """Build the detector named by ``cfg.backend`` (``auto`` settings: see :func:`resolve_faces`); raises
    ``ModelNotFoundError`` naming the fix if its model is absent."""
    cfg = resolve_faces(cfg)
    if cfg.backend == "centerface":
        from pipeline.faces.centerface import CenterFaceDetector

        return CenterFaceDetector(cfg, models_dir(cfg))
    if cfg.backend == "scrfd":
        from pipeline.faces.scrfd import ScrfdDetector

        return ScrfdDetector(cfg, models_dir(cfg))
    raise ValueError(f"unknown face detector backend {cfg.backend!r}; use 'centerface' or 'scrfd'")
