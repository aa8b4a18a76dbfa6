"""The team stack's database for real: a throw-away PostgreSQL cluster, Label Studio and the Prefect server on
it (Prefect's API behind an auth string), then push through the push-tasks flow, and sync with an edit and a
deletion. Debian's ``postgresql`` (.ci/run installs it); initdb and the server run as the ``postgres`` user
when the tests run as root, since PostgreSQL refuses to run as root."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from annotation import server
from annotation.client import LSClient
from annotation.simulate import simulate
from annotation.sync import sync_votes
from schemas.config import BuildConfig
from schemas.manifests import read_manifest
from tests.labelstudio_support import edit_and_delete_then_sync, make_workdir

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _pg_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class Cluster:
    port: int
    user: str
    password: str
    bin: Path
    as_user: list[str]

    def __repr__(self) -> str:
        return f"Cluster(port={self.port}, user={self.user!r})"

    def sql(self, database: str, query: str) -> str:
        """One query through psql; the rows as text."""
        out = subprocess.run([*self.as_user, str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                              "-U", self.user, "-d", database, "-At", "-c", query],
                             env={**os.environ, "PGPASSWORD": self.password}, capture_output=True, text=True,
                             check=True, timeout=60)
        return out.stdout.strip()


@pytest.fixture(scope="module")
def postgres() -> Iterator[Cluster]:
    """A PostgreSQL cluster in a temporary folder on a free port of 127.0.0.1, stopped and removed at the end."""
    pg = _pg_bin()
    if pg is None:
        pytest.skip("PostgreSQL's binaries (initdb, pg_ctl) are absent: install Debian's postgresql (.ci/run does)")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    home = Path(tempfile.mkdtemp(prefix="ferv-pg-"))
    password = secrets.token_hex(16)
    (home / "pw").write_text(password)
    if as_user:
        shutil.chown(home, "postgres")
        shutil.chown(home / "pw", "postgres")
    cluster = Cluster(server.free_port(), "ferv", password, pg, as_user)

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, text=True, timeout=300)

    run(str(pg / "initdb"), "-D", str(home / "data"), "-U", cluster.user, "--auth=scram-sha-256",
        f"--pwfile={home / 'pw'}", "--no-sync")
    run(str(pg / "pg_ctl"), "-D", str(home / "data"), "-l", str(home / "log"), "-w", "-t", "120", "-o",
        f"-p {cluster.port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    try:
        for name in ("labelstudio", "prefect"):
            cluster.sql("postgres", f"CREATE DATABASE {name}")
        yield cluster
    finally:
        subprocess.run([*as_user, str(pg / "pg_ctl"), "-D", str(home / "data"), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def labelstudio_pg(postgres, tmp_path_factory):
    """Label Studio on the cluster (the same DJANGO_DB/POSTGRE_* settings as the team stack)."""
    try:
        server.label_studio_bin()
    except server.ServerError as exc:
        pytest.skip(str(exc))
    data_dir = tmp_path_factory.mktemp("ls-pg-data")
    media = tmp_path_factory.mktemp("ls-pg-media")
    database = server.Postgres("labelstudio", postgres.user, postgres.password, "127.0.0.1", postgres.port)
    srv = server.start(data_dir, media, port=server.free_port(), token_env="FERV_TEST_LS_TOKEN_UNUSED",
                       database=database, wait_s=600)
    try:
        yield srv
    finally:
        server.stop(data_dir)


@pytest.fixture(scope="module")
def prefect_pg(postgres, tmp_path_factory):
    """A Prefect server on the cluster, its API behind an auth string; yields (api url, auth string)."""
    port, auth = server.free_port(), f"admin:{secrets.token_hex(8)}"
    home = tmp_path_factory.mktemp("prefect-pg")
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_API_AUTH_STRING": auth,
           "PREFECT_API_DATABASE_CONNECTION_URL":
               f"postgresql+asyncpg://{postgres.user}:{postgres.password}@127.0.0.1:{postgres.port}/prefect",
           "PREFECT_UI_ENABLED": "false", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    with open(home / "server.log", "wb") as log:
        proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "prefect"), "server", "start", "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    basic = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", headers=basic, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (home / "server.log").read_text()[-3000:]
            time.sleep(1)
        else:
            pytest.fail("the Prefect server did not start: " + (home / "server.log").read_text()[-3000:])
        yield url, auth
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)


FLOW = """
import json, sys
from flows.labelling import push_tasks_flow
print(json.dumps(push_tasks_flow(config=json.loads(sys.argv[1]), local_root=sys.argv[2])))
"""


def test_push_flow_and_sync_on_postgresql(postgres, labelstudio_pg, prefect_pg, tmp_path):
    api, auth = prefect_pg
    assert httpx.get(f"{api}/flow_runs/filter", timeout=10).status_code == 401  # the API wants the auth string
    work = tmp_path / "work"
    ids = make_workdir(work, 3)
    cfg = BuildConfig.model_validate({"workdir": str(work), "labelstudio": {"url": labelstudio_pg.url,
                                                                             "project_title": "pg"},
                                      "annotation": {"gold_fraction": 0, "min_gold_per_group": 0}})
    env = {**os.environ, "PREFECT_API_URL": api, "PREFECT_API_AUTH_STRING": auth, "FERV_LS_TOKEN": labelstudio_pg.token,
           "PREFECT_HOME": str(tmp_path / "prefect-client")}
    flow = subprocess.run([sys.executable, "-c", FLOW, cfg.model_dump_json(), str(labelstudio_pg.clips_root)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert flow.returncode == 0, flow.stderr[-3000:]
    counts = json.loads(flow.stdout.strip().splitlines()[-1])
    assert counts["tasks created"] == 9 and counts["tasks in manifest"] == 9
    # both servers keep their state in PostgreSQL
    assert postgres.sql("prefect", "SELECT state_type FROM flow_run") == "COMPLETED"
    assert postgres.sql("labelstudio", "SELECT count(*) FROM task") == "9"
    assert not (labelstudio_pg.data_dir / "label_studio.sqlite3").exists()

    client = LSClient(labelstudio_pg.url, labelstudio_pg.token, retries=2, backoff_s=0.2)
    tasks = read_manifest(work, "tasks")
    per_copy = [dict(zip(g["clip_id"], g["task_id"])) for _, g in tasks.sort_values("copy_index").groupby("copy_index")]
    sims = simulate(client, per_copy, dict(zip(ids, ["Happy", "Sad", "Angry"])), accuracies=[1.0, 1.0, 1.0], seed=3,
                    prefix="pg-a")
    first = sync_votes(work, cfg, client)
    assert (first.new, first.updated, first.deleted) == (9, 0, 0)
    edit_and_delete_then_sync(work, cfg, client, sims, ids)
    assert postgres.sql("labelstudio", "SELECT count(*) FROM task_completion") == "8"
