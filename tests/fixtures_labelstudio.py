"""Shared pytest fixtures for the annotation area: ONE real Label Studio server per test session.

``labelstudio`` (session scope) starts Label Studio on a free port with a fresh data directory and yields
a :class:`LabelStudioSession`. Like a production server it serves only clips: its local-files document root
(``clips_root``, the media root) is a folder of its own outside the data directory, and push links each
test's ``WORKDIR/clips`` into it; pass ``local_root=labelstudio.clips_root`` to ``push_tasks``.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from annotation import server
from annotation.client import LSClient
from schemas.config import BuildConfig


@dataclass
class LabelStudioSession:
    url: str
    token: str
    data_dir: Path
    clips_root: Path
    client: LSClient

    def __repr__(self) -> str:  # keep the token out of pytest's reports
        return f"LabelStudioSession(url={self.url!r}, data_dir={str(self.data_dir)!r})"

    def config(self, title: str | None = None, **annotation: object) -> BuildConfig:
        """A build config pointing at this server, with a unique project title and optional
        ``annotation`` overrides (e.g. ``gold_fraction=0, min_gold_per_group=0``)."""
        title = title or f"t-{uuid.uuid4().hex[:8]}"
        return BuildConfig.model_validate({"labelstudio": {"url": self.url, "project_title": title,
                                                           "media_root": str(self.clips_root)},
                                           "annotation": annotation})

    def env(self) -> dict[str, str]:
        """Environment for code that reads the token and the media root the production way (``$FERV_LS_TOKEN``,
        ``$FERV_LS_MEDIA_ROOT``, as the team stack's worker does)."""
        return {**os.environ, "FERV_LS_TOKEN": self.token, "FERV_LS_MEDIA_ROOT": str(self.clips_root)}


@pytest.fixture(scope="session")
def labelstudio(tmp_path_factory: pytest.TempPathFactory):
    try:
        server.label_studio_bin()
    except server.ServerError as exc:
        pytest.skip(str(exc))
    clips_root = tmp_path_factory.mktemp("labelstudio-media").resolve()
    data_dir = tmp_path_factory.mktemp("labelstudio-data")
    srv = server.start(data_dir, clips_root, port=server.free_port(), token_env="FERV_TEST_LS_TOKEN_UNUSED")
    try:
        client = LSClient(srv.url, srv.token, retries=2, backoff_s=0.2)
        yield LabelStudioSession(srv.url, srv.token, srv.data_dir, clips_root, client)
    finally:
        server.stop(data_dir)
