"""Pull annotations from Label Studio into append-only ``votes.parquet`` (one row per annotation version).

Each sync exports every project in ``tasks.parquet`` (Label Studio's JSON export: one request per project)
and compares each annotation with its latest synced version: new annotations and those whose
``updated_at`` moved past the synced one are appended; annotations that were synced but are gone now get
a ``deleted=True`` row. The high-water mark is thus ``votes.parquet`` itself (latest ``updated_at`` per
annotation), so there is no separate state to drift, and a sync that fails midway loses nothing: rows are
appended per project under the manifest lock. The latest ``synced_at`` per annotation wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from annotation.client import LSClient
from annotation.labeling_config import CHOICES_NAME
from pipeline.progress import ProgressFn, no_progress
from schemas.config import BuildConfig
from schemas.manifests import append_manifest, read_manifest
from schemas.taxonomy import TAXONOMY


@dataclass
class SyncSummary:
    projects: int = 0
    seen: int = 0  # annotations present in Label Studio now
    new: int = 0
    updated: int = 0
    deleted: int = 0


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
    return (votes.sort_values("synced_at", kind="stable")
            .drop_duplicates(["project_id", "annotation_id"], keep="last"))


def annotation_rows(exported: list[dict], tasks: pd.DataFrame, emails: dict[int, str], now: datetime) -> list[dict]:
    """VoteRecord rows for every annotation of exported tasks that ``tasks`` (one project) knows."""
    info = tasks.set_index("task_id")
    rows = []
    for task in exported:
        if task["id"] not in info.index:
            continue
        t = info.loc[task["id"]]
        role = "expert" if t["project_role"] == "review" else "crowd"
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
                "is_gold": bool(t["is_gold"])})
    return rows


def changed_rows(current: list[dict], latest: pd.DataFrame, project_id: int, now: datetime) -> tuple[list[dict], dict]:
    """Rows to append for one project: new or updated annotations, and deletions."""
    counts = {"new": 0, "updated": 0, "deleted": 0}
    known = latest[latest["project_id"] == project_id].set_index("annotation_id") if len(latest) else pd.DataFrame()
    out = []
    for row in current:
        aid = row["annotation_id"]
        if aid not in known.index:
            counts["new"] += 1
        elif bool(known.at[aid, "deleted"]) or _changed(known.loc[aid], row):
            counts["updated"] += 1
        else:
            continue
        out.append(row)
    present = {r["annotation_id"] for r in current}
    if len(known):
        gone = known[~known["deleted"] & ~known.index.isin(list(present))]
        for aid, old in gone.iterrows():
            out.append({**old.to_dict(), "annotation_id": int(aid), "deleted": True, "synced_at": now})
            counts["deleted"] += 1
    return out, counts


def _changed(old: pd.Series, new: dict) -> bool:
    if pd.isna(old["updated_at"]) or new["updated_at"] is None:
        return True
    return pd.Timestamp(new["updated_at"]) != pd.Timestamp(old["updated_at"]) or old["descriptor"] != new["descriptor"]


def sync_votes(workdir: str | Path, cfg: BuildConfig, client: LSClient, progress: ProgressFn = no_progress) -> SyncSummary:
    """Pull the annotations of every pushed project into ``votes.parquet``; return what changed."""
    workdir = Path(workdir)
    tasks = read_manifest(workdir, "tasks")
    latest = latest_votes(read_manifest(workdir, "votes"))
    emails = user_emails(client)
    summary = SyncSummary()
    projects = sorted(tasks["project_id"].unique()) if len(tasks) else []
    for i, pid in enumerate(projects):
        now = datetime.now(UTC)
        current = annotation_rows(client.export_json(int(pid)), tasks[tasks["project_id"] == pid], emails, now)
        rows, counts = changed_rows(current, latest, int(pid), now)
        if rows:
            append_manifest(workdir, "votes", rows)
        summary.projects += 1
        summary.seen += len(current)
        summary.new += counts["new"]
        summary.updated += counts["updated"]
        summary.deleted += counts["deleted"]
        progress("sync", i + 1, len(projects))
    return summary
