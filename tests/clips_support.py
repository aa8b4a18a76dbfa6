"""Helpers for the clips tests: a work directory whose sources.parquet lists given videos, and box IoU."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from pipeline.media import probe
from schemas.ids import file_sha256, source_id_for_content
from schemas.manifests import write_manifest
from schemas.records import SourceRecord
from schemas.taxonomy import TAXONOMY

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def make_workdir(root: Path, videos: list[tuple[Path, str]], probe_files: bool = True) -> dict[str, str]:
    """Copy ``videos`` (path, scene) into ``root/sources`` and list them in sources.parquet; return
    {file name: source id}. Unreadable files are listed too (``probe_files`` only fills what can be read)."""
    rows, ids = [], {}
    for path, scene in videos:
        sha = file_sha256(path)
        sid = source_id_for_content(sha)
        dest = root / "sources" / f"{sid}{path.suffix}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
        facts = {}
        if probe_files:
            try:
                info = probe(dest)
                facts = dict(width=info.width, height=info.height, fps=info.fps_float, num_frames=info.num_frames,
                             duration_s=info.duration_s)
            except Exception:
                pass
        rows.append(SourceRecord(source_id=sid, url=f"file://{path.name}", origin="local", extractor="local",
                                 scene=scene, scenario=TAXONOMY.scene(scene).scenario,
                                 path=str(dest.relative_to(root)), sha256=sha, fetched_at=T0, title=path.stem, **facts))
        ids[path.name] = sid
    write_manifest(root, "sources", rows)
    return ids


def iou(a, b) -> float:
    """IoU of two boxes x1, y1, x2, y2."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
