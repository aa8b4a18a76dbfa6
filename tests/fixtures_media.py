"""Shared media fixtures: synthetic sample videos made from real photographs, with ground truth."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.samples import SampleTruth, demo_sources, standard_test_video


@pytest.fixture(scope="session")
def standard_video(tmp_path_factory: pytest.TempPathFactory) -> SampleTruth:
    """The 640x360, 25 fps, 18.4 s test video (pan, zoom, face-free, too-short, group, two faces, small face)."""
    return standard_test_video(tmp_path_factory.mktemp("media") / "standard.mp4")


@pytest.fixture(scope="session")
def broken_videos(standard_video: SampleTruth, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A corrupt file (random bytes, .mp4) and a truncated copy of the standard video (first 40% of bytes)."""
    import numpy as np

    folder = tmp_path_factory.mktemp("broken")
    corrupt, truncated = folder / "corrupt.mp4", folder / "truncated.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    data = standard_video.path.read_bytes()
    truncated.write_bytes(data[: int(len(data) * 0.4)])
    return {"corrupt": corrupt, "truncated": truncated}


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled demo sources, made once; builds copy them into their own work directories."""
    out = tmp_path_factory.mktemp("samples")
    demo_sources(out)
    return out
