"""The clips a video export ships: each split's face-crop MP4s of a release, checked, with their metadata."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.release import layout
from pipeline.release.check import read_splits
from pipeline.release.metadata import read_metadata
from pipeline.release.public import check_cfr_h264


def split_clips(release: Path) -> tuple[dict[str, list[tuple[str, Path, Any]]], pd.DataFrame]:
    """Per split, (key, face-crop MP4 checked to be constant-frame-rate H.264, metadata row) for every listed
    clip in list order; and the release's metadata."""
    splits = read_splits(release)
    clips = release / layout.FACE_CLIPS_DIR
    if not clips.is_dir():
        raise ValueError(f"{clips}: missing; build the release with `release.clips: true` to export it as videos")
    meta, _ = read_metadata(release / layout.METADATA_PARQUET)
    rows = {row.path: row for row in meta.itertuples(index=False)}
    out: dict[str, list[tuple[str, Path, Any]]] = {}
    for split, pairs in splits.items():
        out[split] = []
        for key, _ in pairs:
            if key not in rows:
                raise ValueError(f"{release / layout.METADATA_PARQUET}: no row for {key}; rebuild the release")
            src = clips / f"{key}.mp4"
            check_cfr_h264(src, int(rows[key].num_frames))
            out[split].append((key, src, rows[key]))
    return out, meta
