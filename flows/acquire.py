"""Acquire flow: plan sources, fetch each one in its own task (download-limited) through the runner."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task, unmapped
from prefect.concurrency.sync import concurrency

from flows.runtime import (DOWNLOAD_LIMIT, ConfigTaskRunner, ensure_concurrency_limits, gather, publish,
                           resolve_config, skipped, workdir_of)
from pipeline import acquire as stage
from pipeline import run as runner
from pipeline.failures import stage_failures
from schemas.config import BuildConfig
from schemas.manifests import read_manifest


def _cache_key(ctx, p) -> str | None:
    """Cache only a fetch whose file is still there (a deleted work directory is fetched again)."""
    candidate = p["candidate"]
    found = sorted(stage.videos_dir(p["workdir"]).glob(f"{candidate.source_id}.*"))
    if not found:
        return None
    st = found[0].stat()
    return f"acquire-{p['workdir']}-{candidate.source_id}-{p['fetch'].stamp}-{st.st_size}-{st.st_mtime_ns}"


@task(retries=2, retry_delay_seconds=[5, 30], cache_key_fn=_cache_key, persist_result=True,
      task_run_name="fetch {candidate.source_id}")
def fetch_source(workdir: str, candidate: stage.SourceCandidate, fetch: stage.AcquireStage) -> runner.Outcome:
    """Fetch one source through the runner (which records it, or records or clears its failure row); a failure
    fails the task, so its retries run and a failed state is not cached."""
    with concurrency(DOWNLOAD_LIMIT, occupy=1, lease_duration=60):
        outcome = runner.run_one(Path(workdir), fetch, candidate)
    if not outcome.ok:
        raise runner.StageFailed(outcome.failure)
    return outcome


@flow(name="acquire", task_runner=ConfigTaskRunner())
def acquire_flow(config: str | dict | BuildConfig | None = None, workdir: str | None = None,
                 urls_file: str | None = None, local_dir: str | None = None, scene: str | None = None,
                 search: bool | None = None, allow_private: bool = False) -> dict:
    """Fetch source videos from a URL list, a local folder or a keyword search; with none of them given,
    from the config's ``sources`` and (``acquire.search``) its scenes' keywords."""
    cfg = resolve_config(config, workdir)
    root = workdir_of(cfg)
    ensure_concurrency_limits(cfg.runner)
    if urls_file or local_dir or search is not None:
        candidates = stage.plan_sources(root, cfg, urls_file=urls_file, local_dir=local_dir, scene=scene, search=search)
    else:
        candidates = _planned_from_config(root, cfg, scene)
    if not candidates:
        known = len(read_manifest(root, "sources"))
        why = (f"all {known} sources are already in sources.parquet" if known else
               "the config names no sources and acquire.search is off")
        return skipped(f"nothing to acquire: {why}", {"candidates": 0, "sources in manifest": known})
    get_run_logger().info("%d source candidates", len(candidates))
    fetch = stage.AcquireStage(root, cfg, allow_private)
    futures = fetch_source.map(unmapped(str(root)), candidates, unmapped(fetch))
    outcomes = gather(root, fetch.name, [c.source_id for c in candidates], futures)
    failures = stage_failures(root, fetch.name)
    counts = {"candidates": len(candidates), "fetched": sum(o.ok for o in outcomes), "failed": len(failures),
              "sources in manifest": len(read_manifest(root, "sources"))}
    publish("ferv-acquire", "Acquisition", counts,
            {"Failures": failures})
    return counts


def _planned_from_config(root: Path, cfg: BuildConfig, scene: str | None) -> list[stage.SourceCandidate]:
    """Candidates from every entry of the config's ``sources`` (paths relative to the work directory), then
    from keyword search when ``acquire.search`` is on."""
    found: dict[str, stage.SourceCandidate] = {}
    for spec in cfg.sources:
        path = Path(spec.path).expanduser()
        where = {"local_dir" if spec.kind == "local" else "urls_file": path if path.is_absolute() else root / path}
        for c in stage.plan_sources(root, cfg, scene=spec.scene or scene, search=False, **where):
            found.setdefault(c.source_id, c)
    if cfg.acquire.search:
        for c in stage.plan_sources(root, cfg, scene=scene, search=True):
            found.setdefault(c.source_id, c)
    return list(found.values())
