"""Clip flow: one task per source (decode once -> shots, faces, tracks, clips), GPU-limited, then merge."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task, unmapped

from flows.runtime import (ConfigTaskRunner, gather, gpu_slot, publish, resolve_config, skipped, stage_failures,
                           task_runner, workdir_of)
from pipeline import clips as stage
from schemas.config import BuildConfig
from schemas.ids import stable_hash
from schemas.manifests import read_manifest


def _cache_key(ctx, p) -> str | None:
    """Cache only what is on disk: no completion marker, no cache (a deleted work directory is redone);
    the marker holds the stage's config hash, so a changed config misses too."""
    marker = stage.completion_marker(Path(p["workdir"]), p["source_id"])
    if not marker.exists():
        return None
    return f"clips-{p['workdir']}-{p['source_id']}-{stage.stage_config_hash(p['cfg'])}-{stable_hash(marker.read_text())}"


@task(retries=1, retry_delay_seconds=10, cache_key_fn=_cache_key, persist_result=True,
      task_run_name="clips {source_id}")
def clips_for_source(workdir: str, source_id: str, cfg: BuildConfig):
    with gpu_slot(cfg):
        return stage.process_source(Path(workdir), source_id, cfg)


@task
def merge(workdir: str) -> dict[str, int]:
    return stage.merge_parts(Path(workdir))


@flow(name="make-clips", task_runner=ConfigTaskRunner())
def make_clips_flow(config: str | dict | BuildConfig | None = None, workdir: str | None = None) -> dict:
    """Cut candidate clips from every source of sources.parquet."""
    cfg = resolve_config(config, workdir)
    root = workdir_of(cfg)
    source_ids = read_manifest(root, "sources")["source_id"].tolist()
    if not source_ids:
        return skipped(f"no sources in {root / 'sources.parquet'}: run acquire first", {"sources": 0})
    get_run_logger().info("%d sources", len(source_ids))
    futures = clips_for_source.map(unmapped(str(root)), source_ids, unmapped(cfg))
    done = gather(root, "clips", source_ids, futures)
    counts = {"sources": len(source_ids), "processed": len(done), **merge(str(root))}
    failures = stage_failures(root, "clips")
    counts["failed"] = len(failures)
    rejects = read_manifest(root, "rejects")
    reasons = rejects["reason"].value_counts().rename_axis("reason").reset_index(name="candidates")
    publish("ferv-clips", "Candidate clips", counts,
            {"Rejected candidates": reasons.to_dict("records"),
             "Failures": failures})
    return counts


def run(cfg: BuildConfig, **params) -> dict:
    return make_clips_flow.with_options(task_runner=task_runner(cfg.runner))(config=cfg, **params)
