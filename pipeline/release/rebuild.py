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
from pipeline.release.build import ReleaseError, check_target, split_lists
from pipeline.release.files import sha256sums, sync_files, write_bytes
from pipeline.release.metadata import read_metadata
from pipeline.release.sources import find_sources
from schemas.config import ExportConfig
from schemas.errors import UserError
from schemas.taxonomy import TAXONOMY


@dataclass(frozen=True)
class RebuildSummary:
    out: Path
    clips: int
    matched: int  # clips whose re-cut frames have the stored checksum
    problems: tuple[str, ...] = field(default_factory=tuple)  # one line per clip or source that failed


class UnsafeMetadata(UserError, ReleaseError):
    """Release metadata that cannot be trusted: rebuilding from it could write anywhere."""


def _row_problem(row: pd.Series, out: Path) -> str | None:
    """Why a metadata row cannot be trusted (its key, scene, scenario, expression, split or frame range do not
    fit the layout and the taxonomy, or a file of it would land outside ``out``), or None."""
    key = str(row["path"])
    match = layout.KEY_RE.match(key)
    if not match:
        return f"path {key!r} is not <Scene>/<Expression>/<NNNN>"
    scene, expression = match["scene"], match["expression"]
    if scene not in TAXONOMY.scene_names or row["scene"] != scene:
        return f"scene {row['scene']!r} of {key!r} is not the taxonomy scene its path names"
    if row["scenario"] != TAXONOMY.scene(scene).scenario:
        return f"scenario {row['scenario']!r} of {key!r} is not the scenario of {scene}"
    if expression not in TAXONOMY.expression_names or row["expression"] != expression:
        return f"expression {row['expression']!r} of {key!r} is not the taxonomy expression its path names"
    if row["split"] not in layout.SPLITS:
        return f"split {row['split']!r} of {key!r} is not one of {layout.SPLITS}"
    if not 0 <= int(row["start_frame"]) < int(row["end_frame"]):
        return f"frame range [{row['start_frame']}, {row['end_frame']}) of {key!r} is empty or negative"
    root = out.resolve()
    for folder in (layout.FACE_DIR, layout.SCENE_DIR):
        if not (out / folder / key).resolve().is_relative_to(root / folder):
            return f"{key!r} resolves outside {out / folder}"
    return None


def check_metadata(meta: pd.DataFrame, out: Path, where: Path) -> None:
    """Refuse metadata with any row that does not fit (see :func:`_row_problem`), or with a key twice."""
    bad = [(row["clip_id"], problem) for _, row in meta.iterrows() if (problem := _row_problem(row, out))]
    if meta["path"].duplicated().any():
        bad.append(("-", f"paths listed twice: {sorted(set(meta.loc[meta['path'].duplicated(), 'path']))[:3]}"))
    if bad:
        shown = "; ".join(f"{clip}: {problem}" for clip, problem in bad[:3])
        raise UnsafeMetadata(f"{where}: {len(bad)} rows do not fit the release layout and taxonomy ({shown}"
                           f"{'; ...' if len(bad) > 3 else ''}); nothing was written: use the metadata.parquet of "
                           "an unmodified release")


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
    try:
        meta, kv = read_metadata(metadata)
    except (OSError, ValueError) as exc:
        raise UnsafeMetadata(f"{metadata}: not a readable release metadata file ({' '.join(str(exc).split())}); pass "
                           "the metadata.parquet of a release") from None
    check_metadata(meta, out, metadata)
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
                           for folder in (layout.FACE_DIR, *([layout.SCENE_DIR] if scene_frames else []))}
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
