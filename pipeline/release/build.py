"""``build_release``: labelled clips of a work directory -> a release in the FERV39k layout."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from pipeline.export import cut_scene_frames
from pipeline.failures import failure_row
from pipeline.media import VideoError
from pipeline.progress import ProgressFn, no_progress
from pipeline.release import layout
from pipeline.release.datasheet import datasheet
from pipeline.release.files import DIR_MODE, make_dirs, sha256sums, sync_files, write_bytes
from pipeline.release.metadata import (COLUMNS, TrackBoxes, csv_bytes, parquet_bytes, to_table, top_descriptors,
                                      valid_votes, vote_counts)
from pipeline.release.public import public_url
from pipeline.release.report import report_files
from pipeline.release.split import assign_split
from schemas.config import BuildConfig
from schemas.manifests import append_manifest, in_workdir, manifest_lock, read_manifest, write_manifest
from schemas.taxonomy import TAXONOMY

STAGE = "release"
AGREEMENT_FILE = "agreement.json"  # written by the aggregate stage
MANAGED = (layout.CLIPS_DIR, layout.FACE_DIR, layout.SCENE_DIR, layout.SETUPS_DIR, layout.REPORT_DIR)


@dataclass(frozen=True)
class ReleaseSummary:
    out: Path
    clips: int
    train: int
    test: int
    sources: int
    test_sources: int
    skipped: int  # labelled clips left out for missing files or sources (see failures.parquet)
    files_written: int


class ReleaseError(RuntimeError):
    """A release that cannot be built at all; the message says what to do."""


def _frames(folder: Path) -> list[Path]:
    return layout.sorted_frames(folder) if folder.is_dir() else []


def _labelled_clips(workdir: Path, cfg: BuildConfig) -> pd.DataFrame:
    """Clips with a released label (status in ``cfg.release.statuses``, one of the 7 expressions)."""
    clips = read_manifest(workdir, "clips")
    labels = read_manifest(workdir, "labels").rename(columns={"method": "label_method", "status": "label_status"})
    frame = clips.merge(labels.rename(columns={"label": "expression"}), on="clip_id", how="inner")
    keep = frame["label_status"].isin(cfg.release.statuses) & frame["expression"].isin(TAXONOMY.expression_names)
    return frame[keep].reset_index(drop=True)


def _prepare(row, workdir: Path, sources: pd.DataFrame, cfg: BuildConfig) -> str | None:
    """Cut the clip's scene frames from its source if the release ships them and they are not cut yet (the
    clips stage leaves them to the clips a release ships); return why the clip cannot be released, or None."""
    if row.scene not in TAXONOMY.scene_names:
        return f"scene {row.scene!r} is not a taxonomy scene"
    if row.source_id not in sources.index:
        return f"source {row.source_id} is not in sources.parquet"
    if not _frames(workdir / row.frames_dir):
        return f"face-crop frames {workdir / row.frames_dir} are missing"
    if cfg.release.scene_frames and not _frames(workdir / row.scene_frames_dir):
        source = in_workdir(workdir, sources.loc[row.source_id, "path"])
        try:
            cut_scene_frames(source, int(row.start_frame), int(row.end_frame), workdir / row.scene_frames_dir,
                             cfg.export)
        except (VideoError, OSError) as exc:
            return f"scene frames cannot be cut from {source}: {exc}"
    if cfg.release.clips:
        for path in (row.crop_path, row.scene_path):
            if not (workdir / path).is_file():
                return f"clip file {workdir / path} is missing"
    return None


def _usable(frame: pd.DataFrame, workdir: Path, sources: pd.DataFrame, cfg: BuildConfig,
            progress: ProgressFn) -> pd.DataFrame:
    """Drop clips with missing inputs, recording each in ``failures.parquet``; forget earlier release
    failures of clips that are fine now."""
    reasons = []
    for done, row in enumerate(frame.itertuples(index=False), 1):
        reasons.append(_prepare(row, workdir, sources, cfg))
        progress("release: clips", done, len(frame))
    failed = [failure_row(STAGE, clip_id, "MissingInput",
                            f"{clip_id}: {reason}; re-run `ferv clips {workdir}` (or relabel) and build "
                                    "the release again")
              for clip_id, reason in zip(frame["clip_id"], reasons) if reason]
    if failed:
        append_manifest(workdir, "failures", failed, key=["stage", "input_id"])
    fine = {clip_id for clip_id, reason in zip(frame["clip_id"], reasons) if not reason}
    with manifest_lock(workdir, "failures"):
        failures = read_manifest(workdir, "failures")
        stale = (failures["stage"] == STAGE) & failures["input_id"].isin(fine)
        if stale.any():
            write_manifest(workdir, "failures", failures[~stale])
    return frame[[r is None for r in reasons]].reset_index(drop=True)


def _number(frame: pd.DataFrame) -> pd.DataFrame:
    """Give each clip its ``<Scene>/<Expression>/<NNNN>`` key: NNNN counts from 0 within a
    Scene/Expression folder, ordered by (source_id, start_frame, clip_id)."""
    frame = frame.sort_values(["scene", "expression", "source_id", "start_frame", "clip_id"]).reset_index(drop=True)
    index = frame.groupby(["scene", "expression"]).cumcount()
    frame["path"] = [layout.clip_key(s, e, int(i)) for s, e, i in zip(frame["scene"], frame["expression"], index)]
    return frame


def _metadata_frame(frame: pd.DataFrame, workdir: Path, sources: pd.DataFrame, cfg: BuildConfig,
                    valid: pd.DataFrame) -> pd.DataFrame:
    tracks = read_manifest(workdir, "tracks")
    boxes = TrackBoxes(tracks[tracks["track_id"].isin(set(frame["track_id"]))])
    votes = vote_counts(valid)
    descriptors = top_descriptors(valid, dict(zip(frame["clip_id"], frame["expression"])))
    local_roots = [in_workdir(workdir, s.path).resolve() for s in cfg.sources if s.kind == "local"]
    src = sources.loc[frame["source_id"]]
    meta = frame.assign(
        scenario=[TAXONOMY.scene(s).scenario for s in frame["scene"]],
        label_id=[TAXONOMY.expression(e).id for e in frame["expression"]],
        dfew_id=[TAXONOMY.expression(e).dfew_id for e in frame["expression"]],
        source_url=[public_url(u, o, local_roots, h) for u, o, h in zip(src["url"], src["origin"], src["sha256"])],
        source_sha256=src["sha256"].to_numpy(),
        source_title=src["title"].to_numpy(), source_license=src["license"].to_numpy(),
        track_boxes=[boxes.json(t, int(a), int(b))
                     for t, a, b in zip(frame["track_id"], frame["start_frame"], frame["end_frame"])],
        votes=[votes.get(c, "{}") for c in frame["clip_id"]],
        descriptor=[descriptors.get(c) for c in frame["clip_id"]],
        face_frames=[len(_frames(workdir / d)) for d in frame["frames_dir"]],
        face_sha256=frame["sha256"],
    )
    return meta.sort_values("path").reset_index(drop=True)[COLUMNS]


def _labelling(workdir: Path, valid: pd.DataFrame) -> dict:
    """The trusted-labelling figures of the datasheet: valid votes, annotators per role, clips per label status
    and the aggregate stage's agreement figures (``agreement.json``, when written)."""
    agreement = workdir / AGREEMENT_FILE
    return {
        "votes": len(valid),
        "annotators": valid.groupby("role")["annotator"].nunique().to_dict() if len(valid) else {},
        "labels": read_manifest(workdir, "labels")["status"].value_counts().to_dict(),
        "agreement": json.loads(agreement.read_text(encoding="utf-8")) if agreement.is_file() else {},
    }


def _file_plan(frame: pd.DataFrame, workdir: Path, cfg: BuildConfig) -> dict[str, Path]:
    plan: dict[str, Path] = {}
    for row in frame.itertuples(index=False):
        for i, src in enumerate(_frames(workdir / row.frames_dir)):
            plan[f"{layout.FACE_DIR}/{row.path}/{layout.frame_name(i)}"] = src
        if cfg.release.scene_frames:
            for i, src in enumerate(_frames(workdir / row.scene_frames_dir)):
                plan[f"{layout.SCENE_DIR}/{row.path}/{layout.frame_name(i)}"] = src
        if cfg.release.clips:
            plan[f"{layout.FACE_CLIPS_DIR}/{row.path}.mp4"] = workdir / row.crop_path
            plan[f"{layout.SCENE_CLIPS_DIR}/{row.path}.mp4"] = workdir / row.scene_path
    return plan


def _lines(rows: pd.DataFrame) -> bytes:
    lines = [layout.split_line(k, e) for k, e in zip(rows["path"], rows["expression"])]
    return "".join(f"{line}\n" for line in sorted(lines)).encode("utf-8")


def split_lists(meta: pd.DataFrame) -> dict[str, bytes]:
    """``4_setups`` lists: all scenes, and each scene and scenario with clips in the split, train and test
    (no empty list: a scene or scenario whose clips all fell in one split has no list for the other)."""
    files = {}
    for split in layout.SPLITS:
        part = meta[meta["split"] == split]
        files[layout.all_list(split)] = _lines(part)
        for scene in sorted(set(part["scene"])):
            files[layout.scene_list(split, scene)] = _lines(part[part["scene"] == scene])
        for code in sorted(set(part["scenario"])):
            files[layout.scenario_list(split, code)] = _lines(part[part["scenario"] == code])
    return files


def _file_metadata(cfg: BuildConfig) -> dict[str, str]:
    return {
        "ferv.release_name": cfg.release.name,
        "ferv.taxonomy_version": TAXONOMY.version,
        "ferv.seed": str(cfg.release.seed),
        "ferv.test_fraction": repr(cfg.release.test_fraction),
        "ferv.export_config": json.dumps(cfg.export.model_dump(mode="json"), sort_keys=True),
        "ferv.scene_frames": json.dumps(cfg.release.scene_frames),
        "ferv.frame_naming": f"{layout.FRAME_DIGITS}-digit, from 1, playing order (00001.jpg)",
    }


def check_target(out: Path) -> None:
    """Refuse a non-empty folder that is not a release: building removes files it did not write there."""
    if out.exists() and any(out.iterdir()) and not (out / layout.METADATA_PARQUET).exists():
        raise ReleaseError(f"{out} is not empty and holds no ferv release; pick an empty or new folder "
                           "(building deletes files it did not write inside the release folders)")


def build_release(workdir: Path, out: Path, cfg: BuildConfig, progress: ProgressFn = no_progress) -> ReleaseSummary:
    """Build (or bring up to date) the release of ``workdir`` in ``out``; same inputs and seed give the same
    bytes in every file but ``README.md`` (its build time)."""
    workdir, out = Path(workdir), Path(out)
    check_target(out)
    sources = read_manifest(workdir, "sources").drop_duplicates("source_id", keep="last").set_index("source_id")
    labelled = _labelled_clips(workdir, cfg)
    if labelled.empty:
        raise ReleaseError(f"{workdir}: no clip has an accepted label yet; run `ferv aggregate {workdir}` first")
    frame = _number(_usable(labelled, workdir, sources, cfg, progress))
    if frame.empty:
        raise ReleaseError(f"{workdir}: every labelled clip lacks files; see failures.parquet (stage {STAGE})")
    frame["split"] = assign_split(frame, cfg.release.test_fraction, cfg.release.seed)
    valid = valid_votes(read_manifest(workdir, "votes"))
    meta = _metadata_frame(frame, workdir, sources, cfg, valid)
    table = to_table(meta, _file_metadata(cfg))
    plan: dict[str, Path | bytes] = dict(_file_plan(frame, workdir, cfg))
    plan.update(split_lists(meta))
    plan.update(report_files(meta, cfg.release.test_fraction))
    if cfg.expression.report_baseline:  # the expression model's zero-training WAR/UAR (when it is fetched)
        from pipeline.expression.predict import report_section
        plan[layout.REPORT] += report_section(meta, plan, cfg).encode("utf-8")
    make_dirs(out)
    out.chmod(DIR_MODE)
    written = sync_files(out, plan, MANAGED, link=cfg.release.link_files, progress=progress)
    write_bytes(out / layout.METADATA_PARQUET, parquet_bytes(table))
    write_bytes(out / layout.METADATA_CSV, csv_bytes(table))
    write_bytes(out / layout.SUMS, sha256sums(out, progress))
    built_at = datetime.now(timezone.utc).replace(microsecond=0)
    write_bytes(out / layout.README, datasheet(meta, cfg, built_at, _labelling(workdir, valid)))
    test = meta["split"] == "test"
    return ReleaseSummary(out=out, clips=len(meta), train=int((~test).sum()), test=int(test.sum()),
                          sources=meta["source_id"].nunique(), test_sources=meta.loc[test, "source_id"].nunique(),
                          skipped=len(labelled) - len(frame), files_written=written)
