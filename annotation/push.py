"""Provision Label Studio projects from the taxonomy and push clips as tasks, idempotently.

Projects: FERV39k gives each group of clips to 3 annotators as 3 *copies*, each in its own shuffled order
and judged on its own. Each copy is its own project, "<title> copy 1..N" with ``maximum_annotations=1``,
filled in that copy's order, plus "<title> review" for the experts. (Verified in tests/test_browser.py:
Label Studio 1.23's community queue does serve one task to N different annotators when
``maximum_annotations=N``, and not twice to the same one; but one project cannot give each copy its own
order or keep a copy to one annotator, and the API does not enforce the cap, so ferv keeps copies as
projects and enforces caps itself.) Re-provisioning finds projects by title and updates them.

Tasks: the key is (project, clip_id, group_id), stored in each task's ``meta``. Before importing, push lists
the tasks a project already has, so a push that crashed after importing but before writing
``tasks.parquet`` resumes without duplicates; ``tasks.parquet`` is appended after every batch.

Storage: ``labelstudio.storage = "local"`` adds a Local Files storage at the work directory's clips folder as
Label Studio sees it in its document root, the media root (``annotation.media``: only clips are served), and
task URLs are ``/data/local-files/?d=<path relative to that root>``. ``"s3"`` adds an S3 (or MinIO: ``s3_endpoint``)
import storage with presigned URLs, credentials from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, and
task URLs ``s3://<s3_bucket>/<s3_prefix>/<path relative to the work directory>`` (clips uploaded by you).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from annotation.client import LSClient
from annotation.labeling_config import instructions, labeling_config
from annotation.locks import one_at_a_time
from annotation.media import clip_url, clips_storage, media_root
from annotation.priority import prioritize, with_prediction
from pipeline.progress import ProgressFn, no_progress
from schemas.config import BuildConfig, LabelStudioConfig
from schemas.manifests import append_manifest, read_manifest
from schemas.taxonomy import TAXONOMY

REVIEW_COPY = -1


@dataclass
class PushSummary:
    projects: dict[str, int] = field(default_factory=dict)  # title -> project id
    created: int = 0  # tasks imported now
    existing: int = 0  # tasks already in Label Studio (skipped)
    recovered: int = 0  # tasks found in Label Studio but missing from tasks.parquet (added to it)


def copy_title(cfg: LabelStudioConfig, copy_index: int) -> str:
    """The project title of a crowd copy (0-based index) or, for ``REVIEW_COPY``, of the expert review."""
    return f"{cfg.project_title} review" if copy_index == REVIEW_COPY else f"{cfg.project_title} copy {copy_index + 1}"


def provision_project(client: LSClient, title: str, maximum_annotations: int = 1) -> int:
    """Create the project ``title`` or update the existing one (label config, instructions); return its id."""
    settings = {"label_config": labeling_config(), "expert_instruction": instructions(), "show_instruction": True,
                "show_skip_button": True, "maximum_annotations": maximum_annotations,
                "sampling": "Sequential sampling"}
    found = [p for p in client.call("list projects", lambda: list(client.sdk.projects.list(title=title)))
             if p.title == title]
    if found:
        pid = min(p.id for p in found)
        client.call(f"update project {title!r}", client.sdk.projects.update, pid, **settings)
        return pid
    return client.call(f"create project {title!r}", client.sdk.projects.create, title=title, **settings).id


def ensure_storage(client: LSClient, project_id: int, cfg: LabelStudioConfig, storage: Path | None) -> None:
    """Attach the clips' storage to a project once (Local Files at ``storage``, see ``annotation.media``; or S3)."""
    if cfg.storage == "local":
        path = str(storage)
        have = client.call("list storages", client.sdk.import_storage.local.list, project=project_id)
        if not any(s.path == path for s in have):
            client.call("add local storage", client.sdk.import_storage.local.create, project=project_id, path=path,
                        use_blob_urls=False, title="ferv clips")
        return
    if not cfg.s3_bucket:
        raise ValueError("labelstudio.storage is 's3' but labelstudio.s3_bucket is not set")
    have = client.call("list storages", client.sdk.import_storage.s3.list, project=project_id)
    if not any(s.bucket == cfg.s3_bucket and (s.prefix or "") == (cfg.s3_prefix or "") for s in have):
        client.call("add s3 storage", client.sdk.import_storage.s3.create, project=project_id, bucket=cfg.s3_bucket,
                    prefix=cfg.s3_prefix, s3endpoint=cfg.s3_endpoint, presign=True, use_blob_urls=False,
                    aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID"),
                    aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY"), title="ferv clips")


def media_url(cfg: LabelStudioConfig, workdir: Path, rel_path: str, storage: Path | None = None) -> str:
    """The URL Label Studio shows for a clip file given relative to the work directory."""
    if cfg.storage == "s3":
        return f"s3://{cfg.s3_bucket}/{'/'.join(p for p in [(cfg.s3_prefix or '').strip('/'), rel_path] if p)}"
    return clip_url(storage, workdir, rel_path)


def served_clips(cfg: LabelStudioConfig, workdir: Path, local_root: str | Path | None) -> Path | None:
    """The local storage of this work directory's clips under ``local_root`` (Label Studio's document root;
    default ``labelstudio.media_root``); None for S3."""
    return clips_storage(workdir, local_root or media_root(cfg, workdir)) if cfg.storage == "local" else None


def task_payload(clip: pd.Series, row: pd.Series, cfg: LabelStudioConfig, workdir: Path,
                 storage: Path | None = None) -> dict:
    """One task to import: the clip's media URLs and scene name (data) and its key (meta)."""
    scene = TAXONOMY.scene(clip["scene"]).display if clip["scene"] in TAXONOMY.scene_names else clip["scene"]
    key = {"clip_id": clip["clip_id"], "group_id": row["group_id"], "copy_index": int(row["copy_index"]),
           "is_gold": bool(row["is_gold"])}
    data = {"clip_id": clip["clip_id"], "scene": clip["scene"], "scenario": clip["scenario"], "scene_display": scene,
            "scene_video": media_url(cfg, workdir, clip["scene_path"], storage),
            "crop_video": media_url(cfg, workdir, clip["crop_path"], storage)}
    return {"data": data, "meta": key}


def plan(workdir: Path, cfg: BuildConfig, clips: pd.DataFrame, tasks: pd.DataFrame) -> pd.DataFrame:
    """Rows (group_id, copy_index, clip_id, position, is_gold) to push: the trusted-labelling plan of
    ``annotation.trust.plan_groups`` (groups, gold mixed in, a shuffled order per copy); clips planned
    before (in ``tasks.parquet``) keep their groups."""
    from annotation.gold import read_gold
    from annotation.trust import plan_groups

    planned = tasks[tasks["copy_index"] >= 0] if len(tasks) else None
    fresh = plan_groups(clips, read_gold(workdir), cfg.annotation, planned=planned)
    if planned is None or planned.empty:
        return fresh
    old = planned[["group_id", "copy_index", "clip_id", "is_gold"]].assign(position=-1)
    return pd.concat([old, fresh], ignore_index=True)


def import_tasks(client: LSClient, project_id: int, payloads: list[dict], batch_size: int,
                 progress: ProgressFn = no_progress, label: str = "push") -> list[int]:
    """Import payloads in batches; return their task ids in order."""
    ids: list[int] = []
    for start in range(0, len(payloads), batch_size):
        batch = payloads[start:start + batch_size]
        resp = client.call(f"import tasks into project {project_id}", client.sdk.projects.import_tasks, project_id,
                           request=batch, return_task_ids=True)
        if len(resp.task_ids or []) != len(batch):
            raise RuntimeError(f"Label Studio returned {len(resp.task_ids or [])} task ids for {len(batch)} tasks")
        ids.extend(resp.task_ids)
        progress(label, len(ids), len(payloads))
    return ids


@one_at_a_time
def push_tasks(workdir: str | Path, cfg: BuildConfig, client: LSClient, progress: ProgressFn = no_progress,
               local_root: str | Path | None = None) -> PushSummary:
    """Push ``clips.parquet`` as tasks of the copy projects; record them in ``tasks.parquet``.

    ``local_root`` is the server's local-files document root (default: ``labelstudio.media_root``).
    """
    workdir = Path(workdir)
    ls = cfg.labelstudio
    storage = served_clips(ls, workdir, local_root)
    clips = read_manifest(workdir, "clips").set_index("clip_id", drop=False)
    tasks = read_manifest(workdir, "tasks")
    rows = prioritize(plan(workdir, cfg, clips, tasks), clips, cfg.expression)
    summary = PushSummary()
    for copy_index in range(cfg.annotation.annotators_per_clip):
        title = copy_title(ls, copy_index)
        pid = provision_project(client, title)
        summary.projects[title] = pid
        ensure_storage(client, pid, ls, storage)
        mine = rows[rows["copy_index"] == copy_index].sort_values("position", kind="stable")
        mine = mine[mine["clip_id"].isin(clips.index)]
        in_ls = client.task_keys(pid)
        recorded = set(zip(tasks.loc[tasks["project_id"] == pid, "clip_id"],
                           tasks.loc[tasks["project_id"] == pid, "group_id"])) if len(tasks) else set()
        now = datetime.now(UTC)
        gold = dict(zip(zip(mine["clip_id"], mine["group_id"]), mine["is_gold"]))
        recover = [_task_row(pid, k, tid, copy_index, gold.get(k, False), now)
                   for k, tid in in_ls.items() if k not in recorded]
        if recover:
            append_manifest(workdir, "tasks", recover, key=["project_id", "clip_id", "group_id"])
            summary.recovered += len(recover)
        todo = mine[[(c, g) not in in_ls for c, g in zip(mine["clip_id"], mine["group_id"])]]
        summary.existing += len(mine) - len(todo)
        for start in range(0, len(todo), ls.batch_size):
            batch = todo.iloc[start:start + ls.batch_size]
            payloads = [task_payload(clips.loc[r["clip_id"]], r, ls, workdir, storage) for _, r in batch.iterrows()]
            ids = import_tasks(client, pid, payloads, ls.batch_size)
            now = datetime.now(UTC)
            append_manifest(workdir, "tasks", [
                _task_row(pid, (c, g), tid, copy_index, gold_flag, now)
                for c, g, gold_flag, tid in zip(batch["clip_id"], batch["group_id"], batch["is_gold"], ids)], key=["project_id", "clip_id", "group_id"])
            summary.created += len(ids)
            progress(title, start + len(batch), len(todo))
    return summary


def _task_row(pid: int, key: tuple[str, str], task_id: int, copy_index: int, is_gold: bool, now: datetime) -> dict:
    clip_id, group_id = key
    return {"clip_id": clip_id, "project_id": pid, "task_id": int(task_id), "project_role": "copy",
            "copy_index": copy_index, "group_id": group_id, "is_gold": bool(is_gold), "pushed_at": now}


@one_at_a_time
def push_review(workdir: str | Path, cfg: BuildConfig, client: LSClient, clip_ids: list[str],
                progress: ProgressFn = no_progress, local_root: str | Path | None = None) -> PushSummary:
    """Put clips into the expert review project (once each); the caller picks them (e.g.
    ``annotation.trust.review_queue``). Recorded in ``tasks.parquet`` with ``project_role="review"``."""
    workdir = Path(workdir)
    ls = cfg.labelstudio
    storage = served_clips(ls, workdir, local_root)
    clips = read_manifest(workdir, "clips").set_index("clip_id", drop=False)
    title = copy_title(ls, REVIEW_COPY)
    pid = provision_project(client, title)
    ensure_storage(client, pid, ls, storage)
    in_ls = client.task_keys(pid)
    todo = [c for c in dict.fromkeys(clip_ids) if (c, "review") not in in_ls and c in clips.index]
    rows = pd.DataFrame({"clip_id": todo, "group_id": "review", "copy_index": REVIEW_COPY, "is_gold": False})
    payloads = [with_prediction(task_payload(clips.loc[r["clip_id"]], r, ls, workdir, storage),
                                clips.loc[r["clip_id"]], "review", cfg.expression) for _, r in rows.iterrows()]
    ids = import_tasks(client, pid, payloads, ls.batch_size, progress, title)
    now = datetime.now(UTC)
    if ids:
        append_manifest(workdir, "tasks", [
            {**_task_row(pid, (c, "review"), t, REVIEW_COPY, False, now), "project_role": "review"}
            for c, t in zip(todo, ids)], key=["project_id", "clip_id", "group_id"])
    return PushSummary(projects={title: pid}, created=len(ids), existing=len(clip_ids) - len(todo))
