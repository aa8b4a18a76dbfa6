"""Helpers for Label Studio tests: a work directory with tiny real clips and a hand-made clips.parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.media import write_video
from pipeline.synthetic import clip_row
from schemas.manifests import write_manifest
from schemas.taxonomy import TAXONOMY

def make_workdir(workdir: Path, n: int, frames: int = 10) -> list[str]:
    """Write ``n`` clips (64x64 scene + crop videos, ``frames`` frames) and clips.parquet; return clip ids."""
    scenes = TAXONOMY.scene_names
    rows = []
    for i in range(n):
        clip_id = f"clip{i:04d}"
        for kind in ("scene", "crop"):
            shade = (40 * i + (0 if kind == "scene" else 100)) % 255
            write_video(workdir / "clips" / kind / f"{clip_id}.mp4",
                        (np.full((64, 64, 3), (shade + f) % 255, np.uint8) for f in range(frames)), fps=10)
        rows.append(clip_row(clip_id, scenes[i % len(scenes)], scene_path=f"clips/scene/{clip_id}.mp4",
                             crop_path=f"clips/crop/{clip_id}.mp4", num_frames=frames, fps=10.0))
    write_manifest(workdir, "clips", rows)
    return [r["clip_id"] for r in rows]
