"""Helpers for Label Studio tests: a work directory with tiny real clips and a hand-made clips.parquet; an
edit and a deletion seen by sync."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from annotation.simulate import choice_result
from annotation.sync import sync_votes
from pipeline.media import write_video
from pipeline.synthetic import clip_row
from schemas.manifests import read_manifest, write_manifest
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


def edit_and_delete_then_sync(workdir: Path, cfg, client, sims: list, ids: list[str]) -> pd.DataFrame:
    """Edit copy 0's annotation of ``ids[0]`` to "Shock" and delete copy 1's of ``ids[1]`` (``sims``: what
    :func:`annotation.simulate.simulate` returned), sync, and check that sync saw exactly that: one update, one
    deletion, the edit relabelled Surprise. Returns votes.parquet."""
    edited, _ = sims[0][1][ids[0]]
    client.sdk.annotations.update(edited, result=choice_result("Shock"))
    deleted, _ = sims[1][1][ids[1]]
    client.sdk.annotations.delete(deleted)
    again = sync_votes(workdir, cfg, client)
    assert (again.new, again.updated, again.deleted) == (0, 1, 1)
    votes = read_manifest(workdir, "votes")
    latest = votes.sort_values("synced_at").drop_duplicates("annotation_id", keep="last").set_index("annotation_id")
    assert (latest.at[edited, "descriptor"], latest.at[edited, "label"]) == ("Shock", "Surprise")
    assert bool(latest.at[deleted, "deleted"]) and latest["deleted"].sum() == 1
    return votes
