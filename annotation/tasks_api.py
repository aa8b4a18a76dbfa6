"""Label Studio's task list (``/api/tasks``) and project counters, read raw: paginated, filtered with the
Data Manager's ``query`` (e.g. tasks updated since a time), far lighter than the SDK's task objects."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx

from annotation.client import LSClient

PAGE_SIZE = 5000


def _get(client: LSClient, what: str, path: str, params: dict | None = None) -> httpx.Response:
    wrapper = client.sdk._client_wrapper

    def fetch() -> httpx.Response:
        resp = wrapper.httpx_client.httpx_client.get(f"{client.url}{path}", headers=wrapper.get_headers(),
                                                     params=params)
        if resp.status_code >= 500:
            resp.raise_for_status()
        return resp
    return client.call(what, fetch)


def iter_tasks(client: LSClient, project_id: int, fields: str = "task_only", updated_after: str | None = None
               ) -> Iterator[dict]:
    """The tasks of a project (``fields="all"``: with their annotations), optionally only those whose
    ``updated_at`` is after an ISO time. Label Studio moves a task's ``updated_at`` whenever one of its
    annotations is created, edited, skipped or deleted."""
    params: dict = {"project": project_id, "page_size": PAGE_SIZE, "fields": fields}
    if updated_after:
        params["query"] = json.dumps({"filters": {"conjunction": "and", "items": [
            {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime",
             "value": updated_after}]}})
    page = 1
    while True:
        resp = _get(client, f"list tasks of project {project_id}", "/api/tasks/", {**params, "page": page})
        if resp.status_code == 404:  # past the last page
            return
        resp.raise_for_status()
        body = resp.json()
        tasks = body["tasks"] if isinstance(body, dict) else body
        yield from tasks
        total = body.get("total", 0) if isinstance(body, dict) else len(tasks)
        if not tasks or page * PAGE_SIZE >= total:
            return
        page += 1


def task_ids_by_key(client: LSClient, project_id: int) -> dict[str, int]:
    """``meta.task_key`` -> task id of every task ferv pushed to a project."""
    out = {}
    for t in iter_tasks(client, project_id):
        key = (t.get("meta") or {}).get("task_key")
        if key:
            out[key] = t["id"]
    return out


def annotation_count(client: LSClient, project_id: int) -> int:
    """Annotations a project holds now, skipped (cancelled) ones included."""
    resp = _get(client, f"read project {project_id}", f"/api/projects/{project_id}")
    resp.raise_for_status()
    body = resp.json()
    return int(body.get("total_annotations_number") or 0) + int(body.get("skipped_annotations_number") or 0)
