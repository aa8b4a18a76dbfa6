"""``rebuild_release``: re-cut every clip of a release from its source videos, using only
``metadata.parquet``: face-crop frames, verified against the stored checksums, and scene frames where the
release ships them.

This is the "reproduce from scratch" path for people who get the annotation files but not the frames.
The re-cut itself is the clip exporter's (``pipeline.export``), fed the frame range and per-frame track
boxes stored in the metadata and the export settings stored in its key-value metadata.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from pipeline.export import cut_scene_frames, recut_face_frames
from pipeline.progress import ProgressFn, no_progress
from pipeline.release import layout
from pipeline.release.build import check_target, split_lists
from pipeline.release.files import sha256sums, sync_files, write_bytes
from pipeline.release.metadata import read_metadata
from pipeline.release.sources import find_sources
from schemas.config import ExportConfig


@dataclass(frozen=True)
class RebuildSummary:
    out: Path
    clips: int
    matched: int  # clips whose re-cut frames have the stored checksum
    problems: tuple[str, ...] = field(default_factory=tuple)  # one line per clip or source that failed


def _recut(row: pd.Series, source: Path, root: Path, export: ExportConfig, scene_frames: bool) -> str:
    """Re-cut one clip's face-crop frames (and scene frames) under ``root`` in the release layout; return the
    face-crop frames' digest (the exporter's)."""
    start, end = int(row["start_frame"]), int(row["end_frame"])
    if scene_frames:
        cut_scene_frames(source, start, end, root / layout.SCENE_DIR / row["path"], export)
    return recut_face_frames(source, start, end, json.loads(row["track_boxes"]), root / layout.FACE_DIR / row["path"],
                             export)


def rebuild_release(metadata: Path, sources_dir: Path, out: Path, progress: ProgressFn = no_progress) -> RebuildSummary:
    """Re-cut the clips listed in ``metadata`` from the videos in ``sources_dir`` into the release layout in
    ``out`` (face-crop frames, scene frames where the release ships them, split lists, metadata, SHA256SUMS)
    and compare each clip's face-crop frames with its stored ``face_sha256``."""
    metadata, out = Path(metadata), Path(out)
    check_target(out)
    meta, kv = read_metadata(metadata)
    # settings an older ferv recorded that no longer exist (crf) shaped only the MP4s, which are not rebuilt
    recorded = json.loads(kv.get("ferv.export_config", "{}"))
    export = ExportConfig.model_validate({k: v for k, v in recorded.items() if k in ExportConfig.model_fields})
    scene_frames = json.loads(kv.get("ferv.scene_frames", "false"))
    wanted = dict(zip(meta["source_id"], meta["source_sha256"]))
    found, problems = find_sources(Path(sources_dir), wanted)
    plan: dict[str, Path | bytes] = {}
    matched = 0
    with tempfile.TemporaryDirectory(prefix="ferv-rebuild-") as tmp:
        for done, row in enumerate((r for _, r in meta.iterrows()), 1):
            source = found.get(row["source_id"])
            if source is not None:
                try:
                    digest = _recut(row, source, Path(tmp), export, scene_frames)
                except Exception as exc:  # one clip's failure is reported and the others go on
                    problems.append(f"{row['path']} ({row['clip_id']}): re-cut failed: {type(exc).__name__}: {exc}")
                else:
                    cut = {folder: layout.sorted_frames(Path(tmp) / folder / row["path"])
                           for folder in (layout.FACE_DIR, layout.SCENE_DIR)}
                    for folder, files in cut.items():
                        for i, frame in enumerate(files):
                            plan[f"{folder}/{row['path']}/{layout.frame_name(i)}"] = frame
                    frames = cut[layout.FACE_DIR]
                    if digest == row["face_sha256"] and len(frames) == row["face_frames"]:
                        matched += 1
                    else:
                        problems.append(f"{row['path']} ({row['clip_id']}): re-cut frames differ from the release "
                                        f"(sha256 {digest}, {len(frames)} frames; stored {row['face_sha256']}, "
                                        f"{row['face_frames']} frames)")
            progress("rebuild: clips", done, len(meta))
        plan.update(split_lists(meta))
        plan[layout.METADATA_PARQUET] = metadata.read_bytes()
        csv = metadata.with_name(layout.METADATA_CSV)
        if csv.is_file():
            plan[layout.METADATA_CSV] = csv.read_bytes()
        out.mkdir(parents=True, exist_ok=True)
        sync_files(out, plan, (layout.FACE_DIR, layout.SCENE_DIR, layout.SETUPS_DIR), progress=progress)
    write_bytes(out / layout.SUMS, sha256sums(out, progress))
    built = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    write_bytes(out / layout.README, (
        f"# Rebuilt release\n\nRe-cut from the source videos with `ferv release rebuild` using `{layout.METADATA_PARQUET}`.\n\n"
        f"Built: {built}\n\n{matched} of {len(meta)} clips match the stored face-crop checksums.\n"
        "See the original release's README.md for the datasheet, licence and citation.\n").encode("utf-8"))
    return RebuildSummary(out=out, clips=len(meta), matched=matched, problems=tuple(problems))
