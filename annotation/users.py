"""Annotators: Label Studio users with a ferv role (crowd or expert).

Open-source Label Studio has no per-user roles, so ferv keeps the role in the user's ``last_name``
(``ferv:crowd`` / ``ferv:expert``). The API ignores passwords on user creation: with a local server a
one-time password is set through Label Studio's own CLI and written to a 0600 file (never echoed);
otherwise the organization's invite link is returned for the person to sign up with.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from annotation.client import LSClient

Role = Literal["crowd", "expert"]
ROLE_PREFIX = "ferv:"


@dataclass(frozen=True)
class Annotator:
    id: int
    email: str
    role: str | None  # crowd | expert | None (a user ferv did not add)
    password_file: Path | None = None
    invite_url: str | None = None


def _role(last_name: str | None) -> str | None:
    return last_name[len(ROLE_PREFIX):] if last_name and last_name.startswith(ROLE_PREFIX) else None


def list_annotators(client: LSClient) -> list[Annotator]:
    """Every Label Studio user with its ferv role."""
    users = client.call("list users", lambda: list(client.sdk.users.list()))
    return [Annotator(u.id, u.email, _role(u.last_name)) for u in users]


def ensure_user(client: LSClient, email: str, role: Role) -> Annotator:
    """Create the user (or update the role of an existing one) through the API."""
    if role not in ("crowd", "expert"):
        raise ValueError(f"role must be crowd or expert, not {role!r}")
    found = [a for a in list_annotators(client) if a.email.lower() == email.lower()]
    if found:
        if found[0].role != role:
            client.call("update user", client.sdk.users.update, found[0].id, last_name=ROLE_PREFIX + role)
        return Annotator(found[0].id, found[0].email, role)
    user = client.call("create user", client.sdk.users.create, email=email, username=email,
                       first_name=email.split("@")[0], last_name=ROLE_PREFIX + role)
    return Annotator(user.id, user.email, role)


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to a file only its owner can read (in a folder only its owner can list, if made here)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text + "\n")
    os.chmod(path, 0o600)
    return path


def add_annotator(client: LSClient, email: str, role: Role, data_dir: str | Path | None = None) -> Annotator:
    """Create an annotator. With ``data_dir`` (a local server's), set a one-time password and write it to
    ``<data_dir>/annotators/<email>.password`` (0600); else return the organization's invite link."""
    from annotation.server import set_password

    user = ensure_user(client, email, role)
    if data_dir is not None:
        password = secrets.token_urlsafe(12)
        set_password(data_dir, email, password)
        path = write_private(Path(data_dir) / "annotators" / f"{email}.password", password)
        return Annotator(user.id, user.email, role, password_file=path)
    invite = client.call("invite link", lambda: client.sdk._client_wrapper.httpx_client.request(
        "api/invite", method="GET"))
    invite.raise_for_status()
    return Annotator(user.id, user.email, role, invite_url=client.url + invite.json()["invite_url"])
