"""Pull annotations from Label Studio into append-only ``votes.parquet`` (one row per annotation version).

Incremental: per project, only tasks whose ``updated_at`` moved past the project's cursor are read (Label
Studio's task list filtered on ``updated_at``; measured on 1.23.2: a task's ``updated_at`` moves when one
of its annotations is created, edited, skipped or deleted). Each annotation of those tasks is compared with
its latest synced version: new annotations and changed ones are appended, and annotations that were synced
but are gone from their task get a ``deleted=True`` row. A cheap reconcile backs this up: when the
project's annotation counter differs from the live annotations ``votes.parquet`` holds for it, the whole
project is read again (its JSON export) and compared. The first sync of a project reads the export too.

The cursor per project is the latest task ``updated_at`` seen (Label Studio's clock), kept in
``WORKDIR/sync_cursor.json`` per server (``tasks_api.server_id``: URL and organisation); the next sync
asks for tasks updated strictly after it (Label Studio compares to the microsecond). No overlap window: an
import stamps a whole project's tasks within a second or two, and re-reading them costs Label Studio
milliseconds each. (An edit stamped before the cursor but committed after the read would wait for the
project's next full read; a creation or deletion is caught by the counter.) Rows are appended per project
before its cursor moves, so a sync killed midway loses nothing and repeats nothing: the latest
``synced_at`` per annotation (server, project, annotation id) wins. After the votes, the experts' decisions
in the gold project are written into ``gold.parquet``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from annotation.client import LSClient
from annotation.labeling_config import CHOICES_NAME
from annotation.tasks_api import annotation_count, iter_tasks, server_id
from pipeline.progress import ProgressFn, no_progress
from schemas.config import BuildConfig
from schemas.manifests import append_manifest, manifest_lock, read_manifest
from schemas.taxonomy import TAXONOMY


CURSOR_FILE = "sync_cursor.json"
EXPERT_ROLES = ("review", "gold")


@dataclass
class SyncSummary:
    projects: int = 0
    seen: int = 0  # annotations read from Label Studio in this sync
    new: int = 0
    updated: int = 0
    deleted: int = 0
    full: int = 0  # projects read in full (first sync, or the counter disagreed)
    gold: int = 0  # clips in gold.parquet after the sync


def descriptor_of(result: list[dict]) -> str | None:
    """The chosen descriptor (or PASS) in an annotation's result, if any."""
    for item in result or []:
        if item.get("from_name") == CHOICES_NAME and item.get("type") == "choices":
            choices = (item.get("value") or {}).get("choices") or []
            if choices:
                return choices[0]
    return None


def label_of(descriptor: str | None) -> str | None:
    """The expression a descriptor belongs to; PASS stays PASS; unknown words give None."""
    if descriptor is None:
        return None
    if descriptor == TAXONOMY.pass_label:
        return descriptor
    return TAXONOMY.descriptor_to_expression().get(descriptor)


def _time(value: str | None) -> datetime | None:
    return pd.Timestamp(value).to_pydatetime() if value else None


def user_emails(client: LSClient) -> dict[int, str]:
    """Label Studio user id -> email."""
    return {u.id: u.email for u in client.call("list users", lambda: list(client.sdk.users.list()))}


def latest_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """The latest synced version of each annotation (deleted ones included, with ``deleted=True``)."""
    if votes.empty:
        return votes
    return votes.sort_values("synced_at", kind="stable").drop_duplicates(
        ["server", "project_id", "annotation_id"], keep="last")


def annotation_rows(exported: list[dict], tasks: pd.DataFrame, emails: dict[int, str], now: datetime,
                    server: str = "") -> list[dict]:
    """VoteRecord rows for every annotation of exported tasks that ``tasks`` (one project) knows."""
    info = tasks.drop_duplicates("task_id").set_index("task_id")
    rows = []
    for task in exported:
        if task["id"] not in info.index:
            continue
        t = info.loc[task["id"]]
        role = "expert" if t["project_role"] in EXPERT_ROLES else "crowd"
        for a in task.get("annotations") or []:
            descriptor = descriptor_of(a.get("result"))
            who = a.get("completed_by")
            who = who.get("email") if isinstance(who, dict) else emails.get(who, str(who))
            rows.append({
                "clip_id": t["clip_id"], "task_id": int(task["id"]), "project_id": int(t["project_id"]),
                "annotation_id": int(a["id"]), "annotator": who, "role": role, "label": label_of(descriptor),
                "descriptor": descriptor, "lead_time_s": a.get("lead_time"), "created_at": _time(a.get("created_at")),
                "updated_at": _time(a.get("updated_at")), "cancelled": bool(a.get("was_cancelled")),
                "deleted": False, "synced_at": now, "group_id": t["group_id"], "copy_index": int(t["copy_index"]),
                "is_gold": bool(t["is_gold"]), "attempt": int(t["attempt"]), "server": server})
    return rows


def changed_rows(current: list[dict], known: pd.DataFrame, scope: set[int] | None, now: datetime
                 ) -> tuple[pd.DataFrame, dict]:
    """Rows to append for one project: new or changed annotations among ``current``, and deletions of
    ``known`` (its latest synced versions) that are gone from their task. ``scope``: the task ids that were
    read (None: the whole project)."""
    cur = pd.DataFrame(current, columns=list(known.columns) if len(known.columns) else None)
    if cur.empty:
        cur = known.iloc[:0].copy()
    old = known.set_index("annotation_id")
    ids = cur["annotation_id"]
    seen = ids.isin(old.index)
    prev = old.reindex(ids[seen])
    changed = (prev["deleted"].astype(bool).to_numpy()
               | prev["updated_at"].isna().to_numpy() | cur.loc[seen, "updated_at"].isna().to_numpy()
               | (pd.to_datetime(cur.loc[seen, "updated_at"], utc=True).to_numpy()
                  != pd.to_datetime(prev["updated_at"], utc=True).to_numpy())
               | (cur.loc[seen, "descriptor"].fillna("").to_numpy() != prev["descriptor"].fillna("").to_numpy())
               | (cur.loc[seen, "cancelled"].astype(bool).to_numpy() != prev["cancelled"].astype(bool).to_numpy()))
    new = cur[~seen]
    updated = cur[seen][changed]
    live = known[~known["deleted"].astype(bool)]
    if scope is not None:
        live = live[live["task_id"].isin(scope)]
    gone = live[~live["annotation_id"].isin(ids)].assign(deleted=True, synced_at=now)
    out = pd.concat([f for f in (new, updated, gone) if len(f)], ignore_index=True) if (
        len(new) or len(updated) or len(gone)) else cur.iloc[:0]
    return out, {"new": len(new), "updated": len(updated), "deleted": len(gone)}


def read_cursors(workdir: Path, server: str) -> dict[str, str]:
    """Project id (as text) -> the latest task ``updated_at`` a sync has read, for one server."""
    path = workdir / CURSOR_FILE
    return json.loads(path.read_text(encoding="utf-8")).get(server, {}) if path.exists() else {}


def write_cursor(workdir: Path, server: str, project_id: int, value: str) -> None:
    """Record a project's cursor (atomically: temporary file + rename)."""
    path = workdir / CURSOR_FILE
    with manifest_lock(workdir, "votes"):
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        data.setdefault(server, {})[str(project_id)] = value
        tmp = path.with_name(f".{CURSOR_FILE}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        tmp.replace(path)


def sync_project(workdir: Path, client: LSClient, project_id: int, tasks: pd.DataFrame, known: pd.DataFrame,
                 cursor: str | None, emails: dict[int, str], server: str) -> tuple[dict, str | None]:
    """Sync one project: changed tasks since ``cursor`` (or the whole export, when there is no cursor or
    the annotation counter disagrees with ``known``); return the counts and the new cursor."""
    now = datetime.now(UTC)
    full = cursor is None
    if not full:
        since = pd.Timestamp(cursor).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        exported = list(iter_tasks(client, project_id, fields="all", updated_after=since))
        scope = {t["id"] for t in exported}
        current = annotation_rows(exported, tasks, emails, now, server)
        rows, counts = changed_rows(current, known, scope, now)
        gone = set(rows.loc[rows["deleted"].astype(bool), "annotation_id"]) if len(rows) else set()
        live = set(known.loc[~known["deleted"].astype(bool), "annotation_id"]) | {r["annotation_id"] for r in current}
        full = len(live - gone) != annotation_count(client, project_id)
    if full:
        exported = client.export_json(project_id)
        current = annotation_rows(exported, tasks, emails, now, server)
        rows, counts = changed_rows(current, known, None, now)
    if len(rows):
        append_manifest(workdir, "votes", rows)
    stamps = [t.get("updated_at") for t in exported if t.get("updated_at")]
    latest = max(stamps, key=pd.Timestamp) if stamps else cursor
    if cursor and latest and pd.Timestamp(cursor) > pd.Timestamp(latest):
        latest = cursor
    return {**counts, "seen": len(current), "full": int(full)}, latest


def sync_votes(workdir: str | Path, cfg: BuildConfig, client: LSClient, progress: ProgressFn = no_progress) -> SyncSummary:
    """Pull what changed in every pushed project into ``votes.parquet``, then the gold project's expert
    decisions into ``gold.parquet``; return what changed."""
    workdir = Path(workdir)
    tasks = read_manifest(workdir, "tasks")
    latest = latest_votes(read_manifest(workdir, "votes"))
    server = server_id(client)
    latest = latest[latest["server"] == server] if len(latest) else latest
    cursors = read_cursors(workdir, server)
    emails: dict[int, str] | None = None
    summary = SyncSummary()
    projects = sorted(tasks["project_id"].unique()) if len(tasks) else []
    by_project = dict(iter(latest.groupby("project_id"))) if len(latest) else {}
    for i, pid in enumerate(projects):
        pid = int(pid)
        if emails is None:
            emails = user_emails(client)
        known = by_project.get(pid, latest.iloc[:0])
        counts, cursor = sync_project(workdir, client, pid, tasks[tasks["project_id"] == pid], known,
                                      cursors.get(str(pid)), emails, server)
        if cursor and cursor != cursors.get(str(pid)):
            write_cursor(workdir, server, pid, cursor)
        summary.projects += 1
        for name in ("seen", "new", "updated", "deleted", "full"):
            setattr(summary, name, getattr(summary, name) + counts[name])
        progress("sync", i + 1, len(projects))
    if len(tasks) and (tasks["project_role"] == "gold").any():
        summary.gold = update_gold(workdir, tasks)
    return summary


def update_gold(workdir: Path, tasks: pd.DataFrame) -> int:
    """Write the experts' current decisions in the gold project into ``gold.parquet`` (rows for clips not
    from the gold project, e.g. written by hand, stay); return the clips in it."""
    from annotation.gold import gold_from_expert_votes, read_gold, write_gold
    from annotation.trust import current_votes

    votes = current_votes(read_manifest(workdir, "votes"))
    settled = gold_from_expert_votes(votes, tasks)
    old = read_gold(workdir)
    from_project = set(tasks.loc[tasks["project_role"] == "gold", "clip_id"])
    gold = pd.concat([old[~old["clip_id"].isin(from_project)], settled], ignore_index=True)
    gold = gold.sort_values("clip_id", ignore_index=True)
    if not gold.equals(old.sort_values("clip_id", ignore_index=True)):
        write_gold(workdir, gold)
    return len(gold)
