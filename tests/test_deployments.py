"""Deployments as a data engineer runs them: a real Prefect server (started here, SQLite), the `ferv` work
pool, `prefect deploy --all`, a process worker, and every deployment of prefect.yaml run to Completed on a
small work directory; a deployment distributing its tasks over a Dask scheduler and two workers (one of them
SIGKILLed mid-run); Dask without a Prefect server. One server, one worker, one Label Studio for the module."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from annotation.server import free_port
from pipeline.release import check_release
from schemas.manifests import read_manifest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


@dataclass
class PrefectServer:
    url: str  # the API URL
    env: dict[str, str]  # PREFECT_API_URL set, a private PREFECT_HOME

    def state(self, flow_run_id):
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.url}), get_client(sync_client=True) as client:
            return client.read_flow_run(flow_run_id).state

    def run(self, deployment: str, wait: bool = True, **parameters):
        """Start a run of ``deployment`` (flow/deployment); its final state when ``wait``, else its id."""
        from prefect.deployments import run_deployment
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings({PREFECT_API_URL: self.url}):
            run = run_deployment(deployment, parameters=parameters, timeout=900 if wait else 0, poll_interval=2)
        return run.state if wait else run.id

    def wait(self, flow_run_id, timeout: float = 900):
        deadline = time.monotonic() + timeout
        while not (state := self.state(flow_run_id)).is_final():
            assert time.monotonic() < deadline, f"flow run still {state.name} after {timeout} s"
            time.sleep(2)
        return state


def _start(cmd: list[str], env: dict[str, str], log: Path, cwd: Path = REPO) -> subprocess.Popen:
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process started here, and everything it started (its own session)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=20)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _left_in_session(sid: int) -> list[str]:
    import psutil

    left = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if os.getsid(p.pid) == sid:
                left.append(" ".join(p.info["cmdline"] or []))
        except (ProcessLookupError, PermissionError):
            pass
    return left


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_API_URL=url)
    proc = _start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)], env,
                  home / "server.log")
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (home / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the Prefect server did not start in 180 s"
            time.sleep(1)
        yield PrefectServer(url, env)
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def worker(prefect_server, labelstudio, tmp_path_factory):
    """The `ferv` pool, every deployment of prefect.yaml, and one process worker whose code directory
    ($FERV_CODE_DIR) is this checkout (it runs from elsewhere; deploy does not see the variable)."""
    env = prefect_server.env
    subprocess.run([str(BIN / "prefect"), "work-pool", "create", "ferv", "--type", "process"], env=env, check=True,
                   capture_output=True)
    deployed = subprocess.run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], cwd=REPO, env=env,
                              capture_output=True, text=True)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    elsewhere = tmp_path_factory.mktemp("worker")
    proc = _start([str(BIN / "prefect"), "worker", "start", "--pool", "ferv"],
                  {**env, "FERV_CODE_DIR": str(REPO), "FERV_LS_TOKEN": labelstudio.token,
                   "PREFECT_WORKER_QUERY_SECONDS": "1"}, elsewhere / "worker.log",
                  cwd=elsewhere)
    try:
        yield prefect_server
    finally:
        _stop(proc)


def _config(root: Path, samples: Path, models: Path, **extra) -> Path:
    """A demo build config over a copy of the sample sources (config file at root.parent)."""
    root.mkdir(parents=True)
    shutil.copytree(samples, root / "samples")
    data = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    data.update(workdir=str(root), **{k: v for k, v in extra.items() if not isinstance(v, dict)})
    data.setdefault("faces", {})["models_dir"] = str(models)
    for key, value in extra.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
    path = root.parent / f"{root.name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _sample_videos(root: Path) -> list[Path]:
    """The sample videos ``_config`` copied into a work directory."""
    return sorted((root / "samples").rglob("*.mp4"))


def _clip_ids(root: Path) -> list[str]:
    return sorted(read_manifest(root, "clips")["clip_id"])


@pytest.fixture(scope="module")
def threads_build(worker, labelstudio, samples, centerface_models_dir, tmp_path_factory):
    """Every deployment of prefect.yaml, run on the worker in build order over one work directory."""
    root = tmp_path_factory.mktemp("deployments") / "work"
    config = str(_config(root, samples, centerface_models_dir, runner={"gpu_concurrency": 2},
                         labelstudio={"url": labelstudio.url, "project_title": "deployments"}))
    local_root = str(labelstudio.clips_root)
    runs = {
        "acquire": {},
        "make-clips": {},
        "push-tasks": {"local_root": local_root},
        "sync-votes": {},
        "annotation-cycle": {"local_root": local_root},
        "build-dataset": {"simulate": 3, "local_root": local_root},
        "release": {},
    }
    declared = {d["name"] for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    assert declared == set(runs), f"give each deployment of prefect.yaml its parameters here: {declared ^ set(runs)}"
    # each deployment is named after its flow
    states = {name: worker.run(f"{name}/{name}", config=config, **params) for name, params in runs.items()}
    return root, states


def test_every_deployment_runs_to_completed_on_a_worker(threads_build, worker):
    root, states = threads_build
    assert {name: (s.type.value, s.name) for name, s in states.items()} == {
        name: ("COMPLETED", "Completed") for name in states}, {n: s.message for n, s in states.items()}
    # the config's sources (the demo's sample videos), read by the acquire deployment
    assert len(read_manifest(root, "sources")) == len(_sample_videos(root)) == 5
    clips = read_manifest(root, "clips")
    assert len(clips) >= 6
    assert len(read_manifest(root, "tasks")) == 3 * len(clips)
    assert len(read_manifest(root, "votes")) == 3 * len(clips)
    release = root / "release"
    assert check_release(release) == []
    listed = (release / "4_setups" / "All_scenes" / "train_All.csv").read_text().splitlines()
    listed += (release / "4_setups" / "All_scenes" / "test_All.csv").read_text().splitlines()
    assert len(listed) == (read_manifest(root, "labels")["status"] == "accepted").sum() > 0
    # runner.gpu_concurrency: 2 means two slots on this machine, in a limit of its own
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: worker.url}), get_client(sync_client=True) as client:
        limits = {c.name: (c.limit, c.active_slots) for c in client.read_global_concurrency_limits(limit=100)}
    assert limits[f"ferv-gpu-{socket.gethostname().lower()}"] == (2, 0)
    assert limits["ferv-downloads"] == (4, 0)


def test_a_deployment_with_nothing_to_do_says_so(worker, tmp_path):
    """sync-votes without a Label Studio token (as scheduled against a fresh config) and acquire without
    sources end Skipped with one line; the sync creates no work directory."""
    configs = {}
    for name in ("sync", "acquire"):
        configs[name] = tmp_path / f"{name}.yaml"
        configs[name].write_text(yaml.safe_dump({"workdir": str(tmp_path / name), "acquire": {"search": False},
                                                 "labelstudio": {"token_env": "FERV_TEST_NO_SUCH_TOKEN"}}))
    runs = {"sync": worker.run("sync-votes/sync-votes", wait=False, config=str(configs["sync"])),
            "acquire": worker.run("acquire/acquire", wait=False, config=str(configs["acquire"]))}
    synced, acquired = (worker.wait(runs[name]) for name in ("sync", "acquire"))
    assert (synced.type.value, synced.name) == ("COMPLETED", "Skipped")
    assert synced.message.startswith("Label Studio is not configured: no Label Studio API token")
    assert "\n" not in synced.message and not (tmp_path / "sync").exists()
    assert (acquired.type.value, acquired.name, acquired.message) == (
        "COMPLETED", "Skipped", "nothing to acquire: the config names no sources and acquire.search is off")


@pytest.fixture(scope="module")
def dask_cluster(prefect_server, tmp_path_factory):
    """A Dask scheduler and two worker processes (no nanny: a killed worker stays dead), reporting to the
    test's Prefect server."""
    logs = tmp_path_factory.mktemp("dask")
    address = f"tcp://127.0.0.1:{free_port()}"
    env = prefect_server.env
    procs = {"scheduler": _start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                                  address.rsplit(":", 1)[1], "--no-dashboard"], env, logs / "scheduler.log")}
    for name in ("dask-a", "dask-b"):
        procs[name] = _start([str(BIN / "dask"), "worker", address, "--name", name, "--nthreads", "1",
                              "--no-nanny", "--no-dashboard"], env, logs / f"{name}.log")
    import cloudpickle
    from distributed import Client

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers run ferv, not its tests
    try:
        client = Client(address, timeout=120)
        client.wait_for_workers(2, timeout=120)
        yield address, client, procs
        client.close()
    finally:
        for proc in procs.values():
            _stop(proc)


def _executed(dask_worker) -> list[str]:
    """Keys of the tasks this Dask worker has run (its state machine's log)."""
    return sorted({str(key) for key, start, finish, *_ in dask_worker.state.log
                   if start in ("executing", "long-running") and finish == "memory"})


def _dask_config(address, samples, models, root: Path) -> str:
    return str(_config(root, samples, models, runner={"kind": "dask", "dask_address": address}))


def test_a_deployment_distributes_its_tasks_over_dask_workers(threads_build, worker, dask_cluster, samples,
                                                              centerface_models_dir, tmp_path):
    address, client, _ = dask_cluster
    before = client.run(_executed)
    config = _dask_config(address, samples, centerface_models_dir, tmp_path / "work")
    acquired = worker.run("acquire/acquire", config=config)
    assert acquired.name == "Completed", acquired.message
    state = worker.run("make-clips/make-clips", config=config)
    assert state.name == "Completed", state.message
    ran = {w: [k for k in keys if k not in before[w] and k.startswith("clips_for_source")]
           for w, keys in client.run(_executed).items()}
    assert len(ran) == 2 and all(ran.values()), ran  # both workers ran clip tasks
    assert sum(map(len, ran.values())) == len(_sample_videos(tmp_path / "work"))  # one per source
    assert _clip_ids(tmp_path / "work") == _clip_ids(threads_build[0])


def test_a_sigkilled_dask_worker_does_not_change_the_clips(threads_build, worker, dask_cluster, samples,
                                                           centerface_models_dir, tmp_path):
    address, client, procs = dask_cluster
    root = tmp_path / "work"
    config = _dask_config(address, samples, centerface_models_dir, root)
    for acquired in ("sources.parquet", "videos"):  # the same sources as the threads build
        copy = shutil.copytree if acquired == "videos" else shutil.copy
        copy(threads_build[0] / acquired, root / acquired)
    flow_run = worker.run("make-clips/make-clips", wait=False, config=config)
    victim = next(a for a, info in client.scheduler_info()["workers"].items() if info["name"] == "dask-b")
    deadline = time.monotonic() + 300
    while not client.run(lambda dask_worker: len(dask_worker.state.executing), workers=[victim])[victim]:
        assert time.monotonic() < deadline, "dask-b never started a task"
        time.sleep(0.2)
    os.killpg(procs["dask-b"].pid, signal.SIGKILL)  # mid clip generation on that worker
    state = worker.wait(flow_run)
    assert state.name == "Completed", state.message
    assert _clip_ids(root) == _clip_ids(threads_build[0])
    assert read_manifest(root, "failures").empty


def test_dask_without_a_prefect_server(threads_build, samples, centerface_models_dir, tmp_path):
    """`ferv run` with a LocalCluster and no PREFECT_API_URL: one temporary server for the whole run, the
    same clips, nothing left running; with a cluster address it stops at once with one line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")
    local = _config(tmp_path / "local", samples, centerface_models_dir, runner={"kind": "dask", "dask_workers": 2})
    proc = subprocess.Popen([str(BIN / "ferv"), "run", str(local), "--until", "clips"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    assert _clip_ids(tmp_path / "local") == _clip_ids(threads_build[0])
    time.sleep(2)
    assert _left_in_session(proc.pid) == []  # no temporary server (or Dask worker) outlives the run
    assert out.count("Starting temporary server") == 1 and "410 Gone" not in out, out[-3000:]

    remote = _config(tmp_path / "remote", samples, centerface_models_dir,
                     runner={"kind": "dask", "dask_address": "tcp://127.0.0.1:9"})
    started = time.monotonic()
    refused = subprocess.run([str(BIN / "ferv"), "run", str(remote)], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120)
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip().splitlines() == [
        "runner.dask_address needs a Prefect server its Dask workers can reach: start one (`prefect server "
        "start`) and set PREFECT_API_URL here and on every Dask worker (README, For data engineers)"]
    assert time.monotonic() - started < 60 and not (tmp_path / "remote" / "sources.parquet").exists()
