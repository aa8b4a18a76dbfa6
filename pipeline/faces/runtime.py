"""ONNX Runtime providers for the face detectors: CUDA first where present, and a loud warning on fallback."""

from __future__ import annotations

import functools
import logging
import shutil
from pathlib import Path

import onnxruntime as ort

from schemas.config import FacesConfig

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def uses_cuda(cfg: FacesConfig) -> bool:
    """Whether the detector asks for CUDA: not ``device: cpu``, and this onnxruntime has the CUDA provider."""
    return cfg.device != "cpu" and CUDA in ort.get_available_providers()


def requested_providers(cfg: FacesConfig) -> list[str]:
    """Providers to ask for: CUDA then CPU when CUDA is available (``device: auto``) or asked for; a warning
    where CUDA was asked for, or a GPU is present, but this onnxruntime lacks it."""
    if uses_cuda(cfg):
        _preload_cuda()
        return [CUDA, CPU]
    if cfg.device == "cuda":
        log.warning("faces.device is 'cuda' but this onnxruntime has no %s (available: %s); install "
                    "onnxruntime-gpu after insightface. Face detection runs on the CPU.",
                    CUDA, ort.get_available_providers())
    elif cfg.device == "auto" and _has_nvidia_gpu():
        log.warning("an NVIDIA GPU is present but this onnxruntime has no %s: the CPU-only onnxruntime "
                    "(pulled in by insightface) shadows onnxruntime-gpu; reinstall onnxruntime-gpu after "
                    "insightface. Face detection runs on the CPU.", CUDA)
    return [CPU]


def _has_nvidia_gpu() -> bool:
    return Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi") is not None


@functools.cache
def _preload_cuda() -> None:
    """Let onnxruntime find CUDA and cuDNN installed as pip packages (nvidia-*), once per process."""
    if hasattr(ort, "preload_dlls"):
        ort.preload_dlls()


def session_options(cfg: FacesConfig) -> ort.SessionOptions:
    """Session options: ``cfg.threads`` intra-op threads (0 = onnxruntime's default)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = cfg.threads
    # no busy-waiting between runs: the decode and export threads of the clips stage need those cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # graph-optimisation notices: nothing a user can act on
    return options


def check_providers(session: ort.InferenceSession, requested: list[str], model: str) -> list[str]:
    """The providers the session really uses; warn loudly when CUDA was requested but is not among them."""
    used = list(session.get_providers())
    if CUDA in requested and CUDA not in used:
        log.warning("%s: CUDAExecutionProvider was requested but onnxruntime fell back to %s (CUDA or cuDNN "
                    "libraries missing or mismatched?). Face detection will be much slower.", model, used)
    return used
