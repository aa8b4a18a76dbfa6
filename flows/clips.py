"""Clip flow: one task per source (decode once -> shots, faces, tracks, clips), GPU-limited, then merge."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task, unmapped

from flows.runtime import ConfigTaskRunner, gather, gpu_slot, publish, resolve_config, skipped, workdir_of
from pipeline import clips as stage
from pipeline import run as runner
from pipeline.failures import stage_failures
from schemas.config import BuildConfig
from schemas.ids import stable_hash
from schemas.manifests import read_manifest, read_records
from schemas.records import SourceRecord


def _cache_key(ctx, p) -> str | None:
    """Cache only what is on disk: no completion marker, no cache (a deleted work directory is redone);
    the marker holds the stage's config hash, so a changed config misses too."""
    marker = runner.completion_marker(Path(p["workdir"]), p["source"].source_id)
    if not marker.exists():
        return None
    return f"clips-{p['workdir']}-{p['source'].source_id}-{p['clips'].stamp}-{stable_hash(marker.read_text())}"


@task(retries=1, retry_delay_seconds=10, cache_key_fn=_cache_key, persist_result=True,
      task_run_name="clips {source.source_id}")
def clips_for_source(workdir: str, source: SourceRecord, clips: stage.ClipsStage) -> runner.Outcome:
    """One source through the runner (which records or clears its failure row); a failure fails the task, so
    its retries run."""
    with gpu_slot(clips.cfg):
        outcome = runner.run_one(Path(workdir), clips, source)
    if not outcome.ok:
        raise runner.StageFailed(outcome.failure)
    return outcome


@flow(name="make-clips", task_runner=ConfigTaskRunner())
def make_clips_flow(config: str | dict | BuildConfig | None = None, workdir: str | None = None) -> dict:
    """Cut candidate clips from every source of sources.parquet."""
    cfg = resolve_config(config, workdir)
    root = workdir_of(cfg)
    sources = read_records(root, "sources")
    if not sources:
        return skipped(f"no sources in {root / 'sources.parquet'}: run acquire first", {"sources": 0})
    get_run_logger().info("%d sources", len(sources))
    clips = stage.ClipsStage(root, cfg)
    futures = clips_for_source.map(unmapped(str(root)), sources, unmapped(clips))
    outcomes = gather(root, clips.name, [s.source_id for s in sources], futures)
    summary = runner.summarize(outcomes, len(sources))
    counts = {"sources": len(sources), "done": summary.processed + summary.skipped,
              **runner.merge_parts(root, clips, [s.source_id for s in sources])}
    failures = stage_failures(root, clips.name)
    counts["failed"] = len(failures)
    rejects = read_manifest(root, "rejects")
    reasons = rejects["reason"].value_counts().rename_axis("reason").reset_index(name="candidates")
    publish("ferv-clips", "Candidate clips", counts,
            {"Rejected candidates": reasons.to_dict("records"),
             "Failures": failures})
    return counts
