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


def iter_tasks(client: LSClient, project_id: int, fields: str = "task_only", updated_after: str | None = None,
               id_after: int | None = None) -> Iterator[dict]:
    """The tasks of a project (``fields="all"``: with their annotations), optionally only those whose
    ``updated_at`` is after an ISO time, or whose id is above ``id_after``. Label Studio moves a task's
    ``updated_at`` whenever one of its annotations is created, edited, skipped or deleted. (The list costs
    Label Studio milliseconds per task: filter it to what is needed.)"""
    params: dict = {"project": project_id, "page_size": PAGE_SIZE, "fields": fields}
    items = []
    if updated_after:
        items.append({"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime",
                      "value": updated_after})
    if id_after is not None:
        items.append({"filter": "filter:tasks:id", "operator": "greater", "type": "Number", "value": int(id_after)})
    if items:
        params["query"] = json.dumps({"filters": {"conjunction": "and", "items": items}})
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


def task_ids_by_key(client: LSClient, project_id: int, id_after: int | None = None) -> dict[str, int]:
    """``meta.task_key`` -> task id of every task ferv pushed to a project (with an id above ``id_after``)."""
    out = {}
    for t in iter_tasks(client, project_id, id_after=id_after):
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


def server_id(client: LSClient) -> str:
    """Who a Label Studio instance is: its URL and its organisation's creation time. A server re-created
    at the same URL restarts its project and annotation ids but gets a new organisation, so votes keyed by
    (server_id, project id, annotation id) never collide with the old server's."""
    resp = _get(client, "read organization", "/api/organizations/")
    resp.raise_for_status()
    orgs = resp.json()
    org = min(orgs, key=lambda o: o["id"]) if orgs else {}
    return f"{client.url} org {org.get('id')} created {org.get('created_at')}"


def import_batch(client: LSClient, project_id: int, payloads: list[dict]) -> list[int]:
    """Import one batch of tasks (raw JSON: the SDK's request encoder costs about a fifth of a push);
    return their ids in order."""
    wrapper = client.sdk._client_wrapper

    def post() -> httpx.Response:
        resp = wrapper.httpx_client.httpx_client.post(
            f"{client.url}/api/projects/{project_id}/import",
            headers={**wrapper.get_headers(), "Content-Type": "application/json"},
            params={"return_task_ids": "true"}, content=json.dumps(payloads).encode(), timeout=wrapper.get_timeout())
        if resp.status_code >= 500:
            resp.raise_for_status()
        return resp
    resp = client.call(f"import tasks into project {project_id}", post)
    resp.raise_for_status()
    return list(resp.json().get("task_ids") or [])
