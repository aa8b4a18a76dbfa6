"""Provision Label Studio projects from the taxonomy and push clips as tasks, idempotently.

Projects: FERV39k gives each group of clips to 3 annotators as 3 *copies*, each in its own shuffled order
and judged on its own. Each copy is its own project, "<title> copy 1..N" with ``maximum_annotations=1``,
filled in that copy's order, plus "<title> review" for the experts. (Verified in tests/test_browser.py:
Label Studio 1.23's community queue does serve one task to N different annotators when
``maximum_annotations=N``, and not twice to the same one; but one project cannot give each copy its own
order or keep a copy to one annotator, and the API does not enforce the cap, so ferv keeps copies as
projects and enforces caps itself.) Re-provisioning finds projects by title and updates them.

Intents first: every task ferv wants is a row of ``plan.parquet`` (crowd group copies, their re-pushes for
another annotator and extra annotators in "<title> requeue", expert review, the experts' gold project
"<title> gold"), written before anything is imported. Each task carries its deterministic ``task_key`` in
its ``meta``. ``push_plan`` imports the intents ``tasks.parquet`` does not record, after looking them up in
Label Studio among the project's tasks newer than the last recorded one (a push killed between import and
record left them there: they are recovered into ``tasks.parquet``, not imported again). So a push killed
anywhere is completed by the next one, never repeated, and a push with nothing to do asks Label Studio for
no task list at all (listing tasks costs it milliseconds per task).

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
from annotation.labeling_config import crowd_votes_text, project_settings, screen_data
from annotation.locks import one_at_a_time
from annotation.media import clip_url, clips_storage, media_root
from annotation.priority import prioritize, with_prediction
from annotation.tasks_api import import_batch, task_ids_by_key
from annotation.trust import load_state
from pipeline.progress import ProgressFn, no_progress
from schemas.config import BuildConfig, LabelStudioConfig
from schemas.manifests import append_manifest, manifest_lock, read_manifest, write_manifest
from schemas.taxonomy import TAXONOMY

REVIEW_COPY = -1  # copy_index of expert tasks (review and gold)
ROLE_PROJECT = {"redo": "requeue", "extra": "requeue", "review": "review", "gold": "gold"}
NO_VOTES = "no counted crowd votes yet"
TASKS_FLUSH = 5_000  # tasks imported between two writes of tasks.parquet (a killed push looks up at most these)


@dataclass
class PushSummary:
    projects: dict[str, int] = field(default_factory=dict)  # title -> project id
    created: int = 0  # tasks imported now
    existing: int = 0  # tasks already in Label Studio (skipped)
    recovered: int = 0  # tasks found in Label Studio but missing from tasks.parquet (added to it)


def copy_title(cfg: LabelStudioConfig, copy_index: int, role: str = "copy") -> str:
    """The project of a task: "<title> copy <k>" for crowd copy k-1, else "<title> requeue" (re-pushed
    copies, extra annotators), "<title> review" (experts; also ``copy_index == REVIEW_COPY``), "<title> gold"."""
    if role == "copy" and copy_index != REVIEW_COPY:
        return f"{cfg.project_title} copy {copy_index + 1}"
    return f"{cfg.project_title} {ROLE_PROJECT.get(role, 'review')}"


def task_key(role: str, group_id: str, copy_index: int, attempt: int, clip_id: str) -> str:
    """The deterministic key of a planned task, stored in its ``meta`` in Label Studio."""
    return f"{role}|{group_id}|{copy_index}|{attempt}|{clip_id}"


def provision_project(client: LSClient, title: str, maximum_annotations: int = 1, review: bool = False) -> int:
    """Create the project ``title`` or update the existing one (label config, instructions); return its id."""
    found = [p for p in client.call("list projects", lambda: list(client.sdk.projects.list(title=title)))
             if p.title == title]
    settings = {**project_settings(review, started=any(p.total_annotations_number for p in found)),
                "show_skip_button": True, "maximum_annotations": maximum_annotations,
                "sampling": "Sequential sampling"}
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


def task_payload(clip: dict | pd.Series, row: dict | pd.Series, cfg: LabelStudioConfig, workdir: Path,
                 storage: Path | None = None, extra: dict | None = None) -> dict:
    """One task to import: the clip's media URLs and scene name (data, plus ``extra``) and its key (meta)."""
    scene = TAXONOMY.scene(clip["scene"]).display if clip["scene"] in TAXONOMY.scene_names else clip["scene"]
    key = {"task_key": row["task_key"], "clip_id": clip["clip_id"], "group_id": row["group_id"],
           "copy_index": int(row["copy_index"]), "attempt": int(row["attempt"]), "is_gold": bool(row["is_gold"])}
    data = {"clip_id": clip["clip_id"], "scene": clip["scene"], "scenario": clip["scenario"], "scene_display": scene,
            "scene_video": media_url(cfg, workdir, clip["scene_path"], storage),
            "crop_video": media_url(cfg, workdir, clip["crop_path"], storage), **(extra or {})}
    still = clip.get("still_path")
    still_url = media_url(cfg, workdir, still, storage) if isinstance(still, str) and still else None
    data.update(screen_data(clip, data["crop_video"], still_url))
    return {"data": data, "meta": key}


def import_tasks(client: LSClient, project_id: int, payloads: list[dict], batch_size: int,
                 progress: ProgressFn = no_progress, label: str = "push") -> list[int]:
    """Import payloads in batches; return their task ids in order."""
    ids: list[int] = []
    for start in range(0, len(payloads), batch_size):
        batch = payloads[start:start + batch_size]
        got = import_batch(client, project_id, batch)
        if len(got) != len(batch):
            raise RuntimeError(f"Label Studio returned {len(got)} task ids for {len(batch)} tasks")
        ids.extend(got)
        progress(label, len(ids), len(payloads))
    return ids


def intent_rows(rows: pd.DataFrame, role: str, attempt: int | pd.Series = 0) -> pd.DataFrame:
    """``plan.parquet`` rows for (group_id, copy_index, clip_id, position, is_gold) rows of one role."""
    out = rows[["group_id", "copy_index", "clip_id", "position", "is_gold"]].copy()
    out["attempt"] = attempt
    out["project_role"] = role
    out = out.astype({"copy_index": "int64", "attempt": "int64", "position": "int64", "is_gold": bool})
    out["task_key"] = [task_key(role, g, c, a, k) for g, c, a, k in
                       zip(out["group_id"], out["copy_index"], out["attempt"], out["clip_id"])]
    out["planned_at"] = datetime.now(UTC)
    return out


def add_intents(workdir: Path, rows: pd.DataFrame) -> int:
    """Append intents to ``plan.parquet`` (an intent already there is kept as it was); return how many
    are new."""
    if rows.empty:
        return 0
    with manifest_lock(workdir, "plan"):
        old = read_manifest(workdir, "plan")
        new = rows[~rows["task_key"].isin(old["task_key"])].drop_duplicates("task_key")
        if len(new):
            write_manifest(workdir, "plan", pd.concat([old, new[old.columns]], ignore_index=True))
    return len(new)


def plan_new_groups(workdir: Path, cfg: BuildConfig, clips: pd.DataFrame) -> int:
    """Plan the clips no intent holds yet into groups with gold mixed in (``annotation.trust.plan_groups``:
    a shuffled order per copy); return the intents added. Clips planned before keep their groups."""
    from annotation.gold import read_gold
    from annotation.trust import plan_groups

    planned = read_manifest(workdir, "plan")
    fresh = plan_groups(clips, read_gold(workdir), cfg.annotation, planned=planned)
    return add_intents(workdir, intent_rows(fresh, "copy"))


@one_at_a_time
def push_plan(workdir: str | Path, cfg: BuildConfig, client: LSClient, progress: ProgressFn = no_progress,
              local_root: str | Path | None = None) -> PushSummary:
    """Import every intent of ``plan.parquet`` that its project does not hold yet (found by ``task_key``);
    record them in ``tasks.parquet``. An expert review task shows the crowd's counted votes for its clip.
    ``local_root`` is the server's local-files document root (default:
    ``labelstudio.media_root``). One push at a time per work directory (``annotation.locks``)."""
    return _push_plan(Path(workdir), cfg, client, progress, local_root)


def _push_plan(workdir: Path, cfg: BuildConfig, client: LSClient, progress: ProgressFn,
               local_root: str | Path | None) -> PushSummary:
    ls = cfg.labelstudio
    storage = served_clips(ls, workdir, local_root)
    plan = read_manifest(workdir, "plan")
    clips = read_manifest(workdir, "clips").set_index("clip_id", drop=False)
    tasks = read_manifest(workdir, "tasks")
    plan = plan[plan["clip_id"].isin(clips.index)]
    clip_rows = clips.to_dict("index")
    plan["title"] = [copy_title(ls, c, r) for c, r in zip(plan["copy_index"], plan["project_role"])]
    summary = PushSummary()
    shown_votes: dict[str, str] | None = None
    for title, mine in plan.groupby("title", sort=True):
        review = bool((mine["project_role"] == "review").any())
        pid = provision_project(client, title, review=review)
        summary.projects[title] = pid
        ensure_storage(client, pid, ls, storage)
        recorded = tasks[tasks["project_id"] == pid] if len(tasks) else tasks
        done = {task_key(*k) for k in zip(recorded["project_role"], recorded["group_id"], recorded["copy_index"],
                                           recorded["attempt"], recorded["clip_id"])}
        todo = mine[~mine["task_key"].isin(done)]
        if len(todo):
            # imported by a push killed before it recorded them: they are newer than every recorded task
            last = int(recorded["task_id"].max()) if len(recorded) else None
            found = task_ids_by_key(client, pid, id_after=last)
            by_key = mine.set_index("task_key")
            recover = [_task_row(pid, by_key.loc[k], tid) for k, tid in found.items() if k in by_key.index]
            if recover:
                append_manifest(workdir, "tasks", recover, key=["project_id", "task_id"])
                summary.recovered += len(recover)
            todo = todo[~todo["task_key"].isin(list(found))]
        todo = prioritize(todo.sort_values(["group_id", "copy_index", "attempt", "position"], kind="stable"),
                          clips, cfg.expression)
        summary.existing += len(mine) - len(todo)
        if review and len(todo) and shown_votes is None:
            shown_votes = crowd_votes_text(load_state(workdir, cfg).counted)
        pending: list[dict] = []
        for start in range(0, len(todo), ls.batch_size):
            batch = todo.iloc[start:start + ls.batch_size]
            payloads = [with_prediction(task_payload(clip_rows[r.clip_id], r._asdict(), ls, workdir, storage,
                                                     {"crowd_votes": shown_votes.get(r.clip_id, NO_VOTES)}
                                                     if review else None),
                                        clip_rows[r.clip_id], r.project_role, cfg.expression)
                        for r in batch.itertuples(index=False)]
            ids = import_tasks(client, pid, payloads, ls.batch_size)
            pending += [_task_row(pid, r._asdict(), tid) for r, tid in zip(batch.itertuples(index=False), ids)]
            summary.created += len(ids)
            if len(pending) >= TASKS_FLUSH or start + ls.batch_size >= len(todo):
                append_manifest(workdir, "tasks", pending, key=["project_id", "task_id"])
                pending = []
            progress(title, start + len(batch), len(todo))
    return summary


@one_at_a_time
def push_tasks(workdir: str | Path, cfg: BuildConfig, client: LSClient, progress: ProgressFn = no_progress,
               local_root: str | Path | None = None) -> PushSummary:
    """Plan new clips of ``clips.parquet`` into groups (gold mixed in) and push every planned task that
    Label Studio does not hold yet; a second push creates nothing (also when two run at once: the second
    waits for the work directory's lock).

    ``local_root`` is the server's local-files document root (default: ``labelstudio.media_root``).
    """
    workdir = Path(workdir)
    plan_new_groups(workdir, cfg, read_manifest(workdir, "clips"))
    return _push_plan(workdir, cfg, client, progress, local_root)


def _task_row(pid: int, row, task_id: int) -> dict:
    return {"clip_id": row["clip_id"], "project_id": pid, "task_id": int(task_id),
            "project_role": row["project_role"], "copy_index": int(row["copy_index"]), "group_id": row["group_id"],
            "is_gold": bool(row["is_gold"]), "pushed_at": datetime.now(UTC), "attempt": int(row["attempt"])}
