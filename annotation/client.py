"""A thin client over label-studio-sdk: retries with back-off, one clear error when the server is down.

Every call that reaches the server goes through :meth:`LSClient.call`, which retries connection errors,
timeouts and 5xx/429 answers ``retries`` times with exponential back-off, then raises
:class:`LabelStudioUnavailable` naming the URL and what to do. Other API errors (4xx) are raised at once.
The token is kept inside the SDK client and never appears in messages or reprs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from schemas.config import LabelStudioConfig

log = logging.getLogger(__name__)
T = TypeVar("T")


class LabelStudioUnavailable(RuntimeError):
    """Label Studio did not answer (down, unreachable, or failing) after all retries."""


class LabelStudioTokenMissing(RuntimeError):
    """No API token was found in the environment or the local server's token file."""


def _retryable(exc: Exception) -> bool:
    from label_studio_sdk.core.api_error import ApiError

    if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError)):
        return True
    return isinstance(exc, ApiError) and (exc.status_code is None or exc.status_code >= 500 or exc.status_code == 429)


class LSClient:
    """The SDK client (``sdk``) plus retrying calls and the few raw requests the SDK does not cover well."""

    def __init__(self, url: str, token: str, retries: int = 4, timeout_s: float = 60.0, backoff_s: float = 0.5):
        from label_studio_sdk import LabelStudio

        self.url = url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.sdk = LabelStudio(base_url=self.url, api_key=token, timeout=timeout_s)

    def __repr__(self) -> str:
        return f"LSClient(url={self.url!r})"

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` with retries; ``what`` names the operation in messages."""
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not _retryable(exc):
                    raise
                if attempt == self.retries:
                    raise LabelStudioUnavailable(
                        f"Label Studio at {self.url} did not answer ({what}) after {self.retries + 1} tries: "
                        f"{type(exc).__name__}. Start it with `ferv labelstudio up` or check "
                        "labelstudio.url in the config.") from None
                delay = self.backoff_s * 2 ** attempt
                log.warning("Label Studio %s failed (%s); retry %d/%d in %.1f s", what, type(exc).__name__,
                            attempt + 1, self.retries, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def check(self) -> str:
        """The current user's email; raises :class:`LabelStudioUnavailable` if the server is down."""
        return self.call("whoami", self.sdk.users.whoami).email

    def export_json(self, project_id: int) -> list[dict]:
        """All annotated tasks of a project with their annotations (one request, Label Studio's JSON export)."""
        def fetch() -> list[dict]:
            chunks = self.sdk.projects.exports.download_sync(project_id, export_type="JSON",
                                                             download_all_tasks=False)
            return json.loads(b"".join(chunks))
        return self.call(f"export project {project_id}", fetch)

    def task_keys(self, project_id: int) -> dict[tuple[str, str], int]:
        """(clip_id, group_id) -> task id of every task ferv pushed to a project (from the tasks' ``meta``;
        a raw paginated list, fast on large projects)."""
        out: dict[tuple[str, str], int] = {}
        wrapper = self.sdk._client_wrapper
        page = 1
        while True:
            def fetch(page: int = page) -> httpx.Response:
                resp = wrapper.httpx_client.httpx_client.get(
                    f"{self.url}/api/tasks/", headers=wrapper.get_headers(),
                    params={"project": project_id, "page": page, "page_size": 5000, "fields": "task_only"})
                if resp.status_code >= 500:
                    resp.raise_for_status()
                return resp
            resp = self.call(f"list tasks of project {project_id}", fetch)
            if resp.status_code == 404:  # past the last page
                break
            resp.raise_for_status()
            body = resp.json()
            tasks = body["tasks"] if isinstance(body, dict) else body
            for t in tasks:
                meta = t.get("meta") or {}
                if meta.get("clip_id"):
                    out[(meta["clip_id"], meta.get("group_id") or "")] = t["id"]
            total = body.get("total", 0) if isinstance(body, dict) else len(tasks)
            if not tasks or page * 5000 >= total:
                break
            page += 1
        return out


def connect(cfg: LabelStudioConfig, token: str | None = None, data_dir: str | None = None) -> LSClient:
    """A client for ``cfg.url``; the token comes from ``token``, ``$cfg.token_env``, or the local token file."""
    from pathlib import Path

    from annotation.server import TOKEN_FILE

    token = token or cfg.token()
    if not token and data_dir and (Path(data_dir) / TOKEN_FILE).exists():
        token = (Path(data_dir) / TOKEN_FILE).read_text().strip()
    if not token:
        raise LabelStudioTokenMissing(
            f"no Label Studio API token: set ${cfg.token_env}, or start the local server with "
            "`ferv labelstudio up` (it keeps the token in <data dir>/token)")
    return LSClient(cfg.url, token, retries=cfg.retries, timeout_s=cfg.timeout_s)
