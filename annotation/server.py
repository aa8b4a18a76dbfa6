"""A local Label Studio server: start it in the background, wait for ``/health``, stop it, report on it.

Label Studio runs from its own environment (its pins clash with ours): ``$FERV_LABEL_STUDIO_BIN``, else
``<repo>/.venv-ls/bin/label-studio``, else ``label-studio`` on PATH. The admin's API token comes from the
environment (``LabelStudioConfig.token_env``) or is generated once and kept in ``<data dir>/token`` (mode
0600); it is never printed or logged. In production ``url`` points at an existing server and only the token
is needed: the same client code runs.

Private by default: the local-files document root is the media root (``annotation.media``: links to clip
folders only) and the server refuses to start when its data directory or another private path would be
served; sign-up works only through an invite link; the data directory is 0700 and the server runs under
umask 077, so its database, ``.env`` (Django's secret key), log and uploads are readable by their owner only.
The database is SQLite in the data directory, or PostgreSQL (:class:`Postgres`, from the same ``DJANGO_DB`` /
``POSTGRE_*`` variables the team stack sets). ``stop`` only signals the process whose command line is
Label Studio started from that data directory.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import psutil

from annotation.media import check_served_tree

REPO = Path(__file__).resolve().parents[1]
ADMIN_EMAIL = "admin@ferv.local"
TOKEN_FILE = "token"
PID_FILE = "labelstudio.pid"
LOG_FILE = "labelstudio.log"


class ServerError(RuntimeError):
    """The local Label Studio could not be started, found or stopped."""


@dataclass(frozen=True)
class Postgres:
    """A PostgreSQL database for Label Studio; ``password`` is a secret: do not print it."""

    name: str
    user: str
    password: str
    host: str = "127.0.0.1"
    port: int = 5432

    def __repr__(self) -> str:
        return f"Postgres(name={self.name!r}, user={self.user!r}, host={self.host!r}, port={self.port})"

    def env(self) -> dict[str, str]:
        """Label Studio's settings for this database."""
        return {"DJANGO_DB": "default", "POSTGRE_NAME": self.name, "POSTGRE_USER": self.user,
                "POSTGRE_PASSWORD": self.password, "POSTGRE_HOST": self.host, "POSTGRE_PORT": str(self.port)}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Postgres | None":
        """The database named by ``DJANGO_DB=default`` and ``POSTGRE_*`` (as in the team stack), else None."""
        env = os.environ if environ is None else environ
        if env.get("DJANGO_DB") != "default":
            return None
        return cls(env.get("POSTGRE_NAME", "labelstudio"), env.get("POSTGRE_USER", "postgres"),
                   env.get("POSTGRE_PASSWORD", ""), env.get("POSTGRE_HOST", "127.0.0.1"),
                   int(env.get("POSTGRE_PORT", "5432")))


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


def _database_env(database: Postgres | None) -> dict[str, str]:
    """Settings for ``database``; None: PostgreSQL when the environment names one, else SQLite."""
    database = database or Postgres.from_env()
    return database.env() if database else {"DJANGO_DB": "sqlite"}


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("LABEL_STUDIO_", "DJANGO_", "POSTGRE_"))}


def _server_env(data_dir: Path, clips_root: Path, token: str, database: Postgres | None) -> dict[str, str]:
    env = _clean_env()
    env.update(_database_env(database))
    env.update(
        LABEL_STUDIO_USERNAME=ADMIN_EMAIL,
        LABEL_STUDIO_PASSWORD=secrets.token_urlsafe(16),  # admin logs in with the token; password unused
        LABEL_STUDIO_USER_TOKEN=token,
        LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
        LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
        LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(clips_root),
        LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
        LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),
        LATEST_VERSION_CHECK="false",
        COLLECT_ANALYTICS="false",
        SENTRY_DSN="",  # no error reports (with request paths) to Label Studio's Sentry
        FRONTEND_SENTRY_DSN="",
        LOG_LEVEL="WARNING",
    )
    return env


def _pid_in_file(data_dir: Path) -> int | None:
    try:
        return int((data_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def is_our_server(pid: int, data_dir: Path) -> bool:
    """Whether process ``pid`` runs and is Label Studio started from ``data_dir`` (its command line says so)."""
    try:
        cmd = psutil.Process(pid).cmdline()
    except (psutil.Error, OSError):
        return False
    return (any("label-studio" in part or "label_studio" in part for part in cmd)
            and any(cmd[i:i + 2] == ["--data-dir", str(data_dir)] for i in range(len(cmd) - 1)))


def _read_pid(data_dir: Path) -> int | None:
    """The pid of the Label Studio started from ``data_dir``, if it still runs."""
    pid = _pid_in_file(data_dir)
    return pid if pid is not None and is_our_server(pid, data_dir) else None


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def start(data_dir: str | Path, clips_root: str | Path, port: int = 8080, token_env: str = "FERV_LS_TOKEN",
          wait_s: float = 180.0, database: Postgres | None = None, private: Iterable[str | Path] = (),
          served: Iterable[str | Path] = ()) -> LocalServer:
    """Start Label Studio in the background (pid and log files in ``data_dir``) and wait for ``/health``.

    ``clips_root`` is the local-files document root (the media root); ``private`` paths (e.g. the work
    directory with its manifests) and the data directory must lie outside it, outside every folder it links
    to and outside ``served`` (folders that will be linked into it), else :class:`ServerError`. ``database``:
    when None, the one ``Postgres.from_env`` names, else SQLite in ``data_dir``. Returns the running server;
    if one already runs from this data directory, returns that one.
    """
    data_dir, clips_root = Path(data_dir).resolve(), Path(clips_root).resolve()
    try:
        check_served_tree(clips_root, [data_dir, *private], served)
    except RuntimeError as exc:
        raise ServerError(f"refusing to start Label Studio: {exc}") from None
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    clips_root.mkdir(parents=True, exist_ok=True)
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
    with os.fdopen(os.open(data_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log:
        proc = subprocess.Popen(cmd, env=_server_env(data_dir, clips_root, token, database), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                umask=0o077)
    _write_private(data_dir / PID_FILE, str(proc.pid))
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


def stop(data_dir: str | Path, wait_s: float = 30.0) -> str:
    """Stop the server started from ``data_dir``. Returns ``"stopped"``, ``"none"`` (no pid file or its process
    is gone) or ``"foreign"``: the pid file names a live process that is not this data directory's Label
    Studio, which is left alone (the stale pid file is removed)."""
    data_dir = Path(data_dir).resolve()
    named = _pid_in_file(data_dir)
    pid = _read_pid(data_dir)
    (data_dir / PID_FILE).unlink(missing_ok=True)
    if pid is None:
        return "foreign" if named is not None and psutil.pid_exists(named) else "none"
    os.killpg(pid, signal.SIGTERM)  # the server and its workers share the session started for it
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except OSError:
            return "stopped"
        time.sleep(0.3)
    os.killpg(pid, signal.SIGKILL)
    return "stopped"


def status(data_dir: str | Path, url: str) -> dict[str, object]:
    """What runs: pid from ``data_dir`` (if local), and whether ``url`` answers ``/health``."""
    data_dir = Path(data_dir).resolve()
    return {"url": url, "data_dir": str(data_dir), "pid": _read_pid(data_dir), "healthy": is_healthy(url),
            "token_file": str(data_dir / TOKEN_FILE)}


def set_password(data_dir: str | Path, email: str, password: str, database: Postgres | None = None) -> None:
    """Set a local user's password with Label Studio's own CLI (password passed on stdin, not argv)."""
    data_dir = Path(data_dir).resolve()
    env = {**_clean_env(), **_database_env(database)}
    env.update(LABEL_STUDIO_BASE_DATA_DIR=str(data_dir), LATEST_VERSION_CHECK="false", COLLECT_ANALYTICS="false")
    out = subprocess.run([label_studio_bin(), "reset_password", "--data-dir", str(data_dir), "--username", email],
                         input=password + "\n", env=env, capture_output=True, text=True, timeout=300,
                         start_new_session=True, check=False, umask=0o077)
    if "successfully" not in out.stdout and "same as current" not in out.stdout:
        raise ServerError(f"could not set the password of {email}: {out.stdout[-300:]} {out.stderr[-300:]}")
