"""What every flow shares: config resolution, the task runner chosen in config, limits and GPU slots,
artifacts, logs, and the state of a flow with nothing to do."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import State
from prefect.concurrency.sync import concurrency
from prefect.states import Completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from pipeline.progress import ProgressFn
from schemas.config import BuildConfig, RunnerConfig, load_config

DOWNLOAD_LIMIT = "ferv-downloads"
GPU_LIMIT = "ferv-gpu"


def resolve_config(config: str | dict | BuildConfig | None, workdir: str | None = None) -> BuildConfig:
    """A flow parameter (path to YAML, plain dict or model) as a validated config."""
    if isinstance(config, BuildConfig):
        cfg = config
    elif isinstance(config, dict):
        cfg = BuildConfig.model_validate(config)
    else:
        cfg = load_config(config)
    return cfg.model_copy(update={"workdir": workdir}) if workdir else cfg


def workdir_of(cfg: BuildConfig) -> Path:
    path = Path(cfg.workdir).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def task_runner(runner: RunnerConfig):
    """Threads on one machine (default), or Dask: an existing cluster by address, else a LocalCluster.

    Dask workers report task states to the Prefect server the flow uses: a LocalCluster's workers are
    given its address (with no ``PREFECT_API_URL``, the flow's temporary server, one for the whole run);
    workers of a cluster at ``runner.dask_address`` need ``PREFECT_API_URL`` in their own environment."""
    if runner.kind == "dask":
        from prefect_dask import DaskTaskRunner

        if runner.dask_address:
            if not configured_api_url():
                raise PrefectServerNeeded(DASK_NEEDS_SERVER)
            return DaskTaskRunner(address=runner.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": runner.dask_workers, "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None,
                                              "env": {"PREFECT_API_URL": _api_url_in_use()}})
    return ThreadPoolTaskRunner(max_workers=runner.max_workers)


DASK_NEEDS_SERVER = ("runner.dask_address needs a Prefect server its Dask workers can reach: start one "
                     "(`prefect server start`) and set PREFECT_API_URL here and on every Dask worker "
                     "(README, For data engineers)")


class PrefectServerNeeded(RuntimeError):
    """Dask workers elsewhere cannot reach a flow's temporary Prefect server."""


def configured_api_url() -> str | None:
    """The Prefect server set with PREFECT_API_URL (none: each process would start a temporary one)."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def _api_url_in_use() -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return str(client.api_url)


class ConfigTaskRunner(TaskRunner):
    """The task runner the flow's own ``config`` parameter chooses (``runner`` section), made at the first
    submitted task: a deployment run and ``ferv run`` distribute a flow's tasks alike."""

    def __init__(self):
        super().__init__()
        self._inner: TaskRunner | None = None

    def duplicate(self) -> "ConfigTaskRunner":
        return type(self)()

    def _runner(self) -> TaskRunner:
        if self._inner is None:
            from prefect.context import FlowRunContext

            params = FlowRunContext.get().parameters
            cfg = resolve_config(params.get("config"), params.get("workdir"))
            self._inner = task_runner(cfg.runner).__enter__()
        return self._inner

    def submit(self, task, parameters, wait_for=None, dependencies=None):
        return self._runner().submit(task, parameters, wait_for=wait_for, dependencies=dependencies)

    def map(self, task, parameters, wait_for=None):
        return self._runner().map(task, parameters, wait_for=wait_for)

    def __exit__(self, *exc) -> None:
        if self._inner is not None:
            self._inner.__exit__(*exc)
        super().__exit__(*exc)


def ensure_concurrency_limits(runner: RunnerConfig) -> None:
    """Create (or resize) the global limit for downloads on the Prefect server (GPU slots: ``gpu_slot``)."""
    _ensure_limit(DOWNLOAD_LIMIT, runner.download_concurrency)


def _ensure_limit(name: str, limit: int) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            current = client.read_global_concurrency_limit_by_name(name)
            if current.limit != limit:
                client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit))
        except ObjectNotFound:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))


@contextmanager
def gpu_slot(cfg: BuildConfig) -> Iterator[None]:
    """Hold one of this machine's GPU slots (limit ``ferv-gpu-<host>``) while a source is processed.

    A machine has ``runner.gpu_concurrency`` slots, by default one per GPU it shows; where face detection
    runs on the CPU there is no slot to hold (the workers or threads bound the work)."""
    slots = cfg.runner.gpu_concurrency if cfg.runner.gpu_concurrency is not None else gpus_here(cfg)
    if not slots:
        yield
        return
    name = f"{GPU_LIMIT}-{socket.gethostname()}".lower()
    _ensure_limit(name, slots)
    with concurrency(name, occupy=1, lease_duration=60):
        yield


def gpus_here(cfg: BuildConfig) -> int:
    """GPUs this machine's detector uses: none without CUDA in onnxruntime, else CUDA_VISIBLE_DEVICES or
    what ``nvidia-smi -L`` lists (at least one)."""
    from pipeline.faces.runtime import uses_cuda

    if not uses_cuda(cfg.faces):
        return 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip()])
    smi = shutil.which("nvidia-smi")
    listed = subprocess.run([smi, "-L"], capture_output=True, text=True).stdout if smi else ""
    return max(1, sum(line.startswith("GPU ") for line in listed.splitlines()))


def skipped(message: str, result: dict[str, Any]) -> State:
    """The end of a flow that had nothing to do: Completed, shown as "Skipped" with one line saying why."""
    from prefect import get_run_logger

    get_run_logger().info(message)
    return Completed(name="Skipped", message=message, data=result)


def log_progress(logger: logging.Logger | logging.LoggerAdapter, every: float = 0.1) -> ProgressFn:
    """A progress listener that logs each task's progress in steps of ``every`` (a share of the total)."""
    last: dict[str, float] = {}

    def report(task: str, done: int, total: int | None) -> None:
        share = done / total if total else 0.0
        if done == total or share - last.get(task, -1.0) >= every:
            last[task] = share
            logger.info("%s: %d/%s", task, done, total if total is not None else "?")

    return report


def markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "_(none)_"
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(r.get(h, "")) for h in header) + " |" for r in rows]
    return "\n".join(lines)


def publish(key: str, title: str, counts: dict[str, Any], tables: dict[str, list[dict[str, Any]]] | None = None) -> None:
    """A markdown artifact with a flow's counts and tables (Prefect keys: lowercase letters, digits, dashes)."""
    parts = [f"# {title}", "", markdown_table([{"what": k, "count": v} for k, v in counts.items()])]
    for heading, rows in (tables or {}).items():
        parts += ["", f"## {heading}", "", markdown_table(rows)]
    create_markdown_artifact(key=key, markdown="\n".join(parts), description=title)


def gather(workdir: Path, stage: str, input_ids: list[str], futures) -> list:
    """Outcomes of mapped runner tasks (:func:`pipeline.run.run_one`), in order. A task that failed for good
    already has its failure row (the runner's); one that crashed outside the runner gets one now."""
    from pipeline import run as runner

    outcomes = []
    for input_id, future in zip(input_ids, futures):
        future.wait()
        state = future.state
        if state.is_completed():
            outcomes.append(future.result())
            continue
        exc = state.result(raise_on_failure=False)
        if isinstance(exc, runner.StageFailed):
            outcomes.append(runner.Outcome(input_id, failure=exc.failure))
            continue
        if not isinstance(exc, BaseException):
            exc = RuntimeError(f"task ended in state {state.type.value}: {state.message}")
        outcomes.append(runner.fail(workdir, stage, input_id, exc))
    return outcomes
