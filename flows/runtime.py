"""What every flow shares: config resolution, the task runner chosen in config, limits, artifacts, logs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner

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
    """Threads on one machine (default), or Dask: an existing cluster by address, else a LocalCluster."""
    if runner.kind == "dask":
        from prefect_dask import DaskTaskRunner

        if runner.dask_address:
            return DaskTaskRunner(address=runner.dask_address)
        return DaskTaskRunner(cluster_kwargs={"n_workers": runner.dask_workers, "threads_per_worker": 1,
                                              "processes": True, "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=runner.max_workers)


def ensure_concurrency_limits(runner: RunnerConfig) -> None:
    """Create (or resize) the global limits for downloads and GPU work on the Prefect server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        for name, limit in ((DOWNLOAD_LIMIT, runner.download_concurrency), (GPU_LIMIT, runner.gpu_concurrency)):
            try:
                current = client.read_global_concurrency_limit_by_name(name)
                if current.limit != limit:
                    client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=limit))
            except ObjectNotFound:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))


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
