"""A local Label Studio server: start it in the background, wait for ``/health``, stop it, report on it.

Label Studio runs from its own environment (its pins clash with ours): ``$FERV_LABEL_STUDIO_BIN``, else
``<repo>/.venv-ls/bin/label-studio``, else ``label-studio`` on PATH. The admin's API token comes from the
environment (``LabelStudioConfig.token_env``) or is generated once and kept in ``<data dir>/token`` (mode
0600); it is never printed or logged. Local-file serving is rooted at the clips directory only. In
production ``url`` points at an existing server and only the token is needed: the same client code runs.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

REPO = Path(__file__).resolve().parents[1]
ADMIN_EMAIL = "admin@ferv.local"
TOKEN_FILE = "token"
PID_FILE = "labelstudio.pid"
LOG_FILE = "labelstudio.log"


class ServerError(RuntimeError):
    """The local Label Studio could not be started, found or stopped."""


@dataclass(frozen=True)
class LocalServer:
    """A local server's coordinates; ``token`` is a secret: do not print it."""

    url: str
    data_dir: Path
    clips_root: Path
    token: str = ""
    pid: int | None = None

    def __repr__(self) -> str:  # keep the token out of reprs, tracebacks and logs
        return f"LocalServer(url={self.url!r}, data_dir={str(self.data_dir)!r}, pid={self.pid})"

    @property
    def token_file(self) -> Path:
        return self.data_dir / TOKEN_FILE

    @property
    def log_file(self) -> Path:
        return self.data_dir / LOG_FILE


def label_studio_bin() -> str:
    """The ``label-studio`` executable of Label Studio's own environment."""
    env = os.environ.get("FERV_LABEL_STUDIO_BIN")
    if env:
        return env
    local = REPO / ".venv-ls" / "bin" / "label-studio"
    if local.exists():
        return str(local)
    found = shutil.which("label-studio")
    if not found:
        raise ServerError("label-studio not found: install it in its own venv at .venv-ls "
                          "(uv venv .venv-ls && uv pip install -p .venv-ls/bin/python label-studio==1.23.2) "
                          "or set FERV_LABEL_STUDIO_BIN")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_token(data_dir: str | Path, token_env: str = "FERV_LS_TOKEN") -> str:
    """The admin token: from ``$token_env`` if set, else read from (or generated once into) a 0600 file."""
    env = os.environ.get(token_env)
    if env:
        return env
    path = Path(data_dir) / TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether ``url``/health answers 200."""
    try:
        with urlopen(url.rstrip("/") + "/health", timeout=timeout) as resp:
            return resp.status == 200
    except (URLError, OSError, ValueError):
        return False


def _server_env(data_dir: Path, clips_root: Path, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DJANGO_"))}
    env.update(
        LABEL_STUDIO_USERNAME=ADMIN_EMAIL,
        LABEL_STUDIO_PASSWORD=secrets.token_urlsafe(16),  # admin logs in with the token; password unused
        LABEL_STUDIO_USER_TOKEN=token,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
        LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(clips_root),
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
        LOG_LEVEL="WARNING",
    )
    return env


def _read_pid(data_dir: Path) -> int | None:
    try:
        pid = int((data_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except OSError:
        return None
    return pid


def start(data_dir: str | Path, clips_root: str | Path, port: int = 8080, token_env: str = "FERV_LS_TOKEN",
          wait_s: float = 180.0) -> LocalServer:
    """Start Label Studio in the background (pid and log files in ``data_dir``) and wait for ``/health``.

    Returns the running server; if one already runs from this data directory, returns that one.
    """
    data_dir, clips_root = Path(data_dir).resolve(), Path(clips_root).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    token = ensure_token(data_dir, token_env)
    url = f"http://127.0.0.1:{port}"
    pid = _read_pid(data_dir)
    if pid is not None:
        if is_healthy(url):
            return LocalServer(url, data_dir, clips_root, token, pid)
        raise ServerError(f"a Label Studio (pid {pid}) already runs from {data_dir} but not on {url}; "
                          "run `ferv labelstudio down` first")
    if is_healthy(url):
        raise ServerError(f"port {port} is already served by another Label Studio; choose another port")
    cmd = [label_studio_bin(), "start", "--data-dir", str(data_dir), "--port", str(port),
           "--internal-host", "127.0.0.1", "--no-browser"]
    with open(data_dir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(cmd, env=_server_env(data_dir, clips_root, token), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    (data_dir / PID_FILE).write_text(str(proc.pid))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if is_healthy(url):
            return LocalServer(url, data_dir, clips_root, token, proc.pid)
        if proc.poll() is not None:
            (data_dir / PID_FILE).unlink(missing_ok=True)
            raise ServerError(f"Label Studio exited with code {proc.returncode}; see {data_dir / LOG_FILE}")
        time.sleep(1.0)
    stop(data_dir)
    raise ServerError(f"Label Studio did not answer {url}/health within {wait_s:.0f} s; see {data_dir / LOG_FILE}")


def stop(data_dir: str | Path, wait_s: float = 30.0) -> bool:
    """Stop the server started from ``data_dir``; False if none was running."""
    data_dir = Path(data_dir).resolve()
    pid = _read_pid(data_dir)
    (data_dir / PID_FILE).unlink(missing_ok=True)
    if pid is None:
        return False
    os.killpg(pid, signal.SIGTERM)  # the server and its workers share the session started for it
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except OSError:
            return True
        time.sleep(0.3)
    os.killpg(pid, signal.SIGKILL)
    return True


def status(data_dir: str | Path, url: str) -> dict[str, object]:
    """What runs: pid from ``data_dir`` (if local), and whether ``url`` answers ``/health``."""
    data_dir = Path(data_dir).resolve()
    return {"url": url, "data_dir": str(data_dir), "pid": _read_pid(data_dir), "healthy": is_healthy(url),
            "token_file": str(data_dir / TOKEN_FILE)}


def set_password(data_dir: str | Path, email: str, password: str) -> None:
    """Set a local user's password with Label Studio's own CLI (password passed on stdin, not argv)."""
    data_dir = Path(data_dir).resolve()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DJANGO_"))}
    env.update(LABEL_STUDIO_BASE_DATA_DIR=str(data_dir), LATEST_VERSION_CHECK="false", COLLECT_ANALYTICS="false")
    out = subprocess.run([label_studio_bin(), "reset_password", "--data-dir", str(data_dir), "--username", email],
                         input=password + "\n", env=env, capture_output=True, text=True, timeout=300,
                         start_new_session=True, check=False)
    if "successfully" not in out.stdout and "same as current" not in out.stdout:
        raise ServerError(f"could not set the password of {email}: {out.stdout[-300:]} {out.stderr[-300:]}")
