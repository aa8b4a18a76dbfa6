"""Annotation flows: push clips to Label Studio as tasks, pull votes back, and the trusted-labelling cycle
(scheduled: sync, verdicts, re-push, review, extra annotators, labels).

Retries with back-off against a slow or unreachable server live in ``annotation.client.LSClient``."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.states import State

from annotation.client import LabelStudioTokenMissing, connect
from annotation.cycle import run_cycle
from annotation.push import push_tasks
from annotation.report import artifact_markdown, qc_report
from annotation.sync import sync_votes
from flows.runtime import log_progress, publish, resolve_config, skipped, workdir_of
from schemas.config import BuildConfig
from schemas.manifests import manifest_path, read_manifest


def _not_ready(cfg: BuildConfig, ls_data_dir: str | None, manifest: str, missing: str, step: str,
               counts: dict) -> State | None:
    """A Skipped state, creating nothing, where Label Studio is not configured (no token) or the work
    directory has no ``manifest`` yet (``step`` makes it); None when the flow has work to do."""
    try:
        connect(cfg.labelstudio, data_dir=ls_data_dir)
    except LabelStudioTokenMissing as exc:
        return skipped(f"Label Studio is not configured: {exc}", counts)
    path = manifest_path(Path(cfg.workdir).expanduser(), manifest)
    if not path.exists():
        return skipped(f"{missing} ({path} does not exist): run {step} first", counts)
    return None


@task
def push(workdir: str, cfg: BuildConfig, ls_data_dir: str | None, local_root: str | None):
    client = connect(cfg.labelstudio, data_dir=ls_data_dir)
    return push_tasks(workdir, cfg, client, progress=log_progress(get_run_logger()), local_root=local_root)


@task
def sync(workdir: str, cfg: BuildConfig, ls_data_dir: str | None):
    client = connect(cfg.labelstudio, data_dir=ls_data_dir)
    return sync_votes(workdir, cfg, client, progress=log_progress(get_run_logger()))


@flow(name="push-tasks")
def push_tasks_flow(config: str | dict | BuildConfig | None = None, workdir: str | None = None,
                    ls_data_dir: str | None = None, local_root: str | None = None) -> dict:
    """Push every clip of clips.parquet to the copy projects (idempotent: clip id is the key)."""
    cfg = resolve_config(config, workdir)
    root = workdir_of(cfg)
    if read_manifest(root, "clips").empty:
        return skipped(f"no clips in {root / 'clips.parquet'} to push: run make-clips first", {"tasks created": 0})
    summary = push(str(root), cfg, ls_data_dir, local_root)
    counts = {"tasks created": summary.created, "tasks already there": summary.existing,
              "tasks recovered": summary.recovered, "tasks in manifest": len(read_manifest(root, "tasks"))}
    publish("ferv-push", "Label Studio tasks", counts,
            {"Projects": [{"project": t, "id": i} for t, i in summary.projects.items()]})
    return counts


@flow(name="sync-votes")
def sync_votes_flow(config: str | dict | BuildConfig | None = None, workdir: str | None = None,
                    ls_data_dir: str | None = None) -> dict:
    """Pull new, changed and deleted annotations into votes.parquet (append-only).

    Skipped, creating nothing, where Label Studio is not configured (no token) or no task was pushed yet."""
    cfg = resolve_config(config, workdir)
    if (state := _not_ready(cfg, ls_data_dir, "tasks", "no tasks pushed yet", "push-tasks", {"votes": 0})):
        return state
    root = workdir_of(cfg)
    summary = sync(str(root), cfg, ls_data_dir)
    counts = {k: v for k, v in vars(summary).items() if isinstance(v, int)}
    counts["votes in manifest"] = len(read_manifest(root, "votes"))
    publish("ferv-sync", "Vote sync", counts)
    return counts


@task
def cycle(workdir: str, cfg: BuildConfig, ls_data_dir: str | None, local_root: str | None):
    client = connect(cfg.labelstudio, data_dir=ls_data_dir)
    return run_cycle(workdir, cfg, client, progress=log_progress(get_run_logger()), local_root=local_root)


@flow(name="annotation-cycle")
def annotation_cycle_flow(config: str | dict | BuildConfig | None = None, workdir: str | None = None,
                          ls_data_dir: str | None = None, local_root: str | None = None) -> dict:
    """One turn of the trusted-labelling loop (``annotation.cycle``); idempotent, safe to kill and re-run.
    Ends with two artifacts: the cycle's counts, and the QC report's plots for the team lead.

    Skipped, creating nothing, where Label Studio is not configured (no token) or no clip was cut yet."""
    cfg = resolve_config(config, workdir)
    if (state := _not_ready(cfg, ls_data_dir, "clips", "no clips yet", "make-clips", {"tasks pushed": 0})):
        return state
    root = workdir_of(cfg)
    c = cycle(str(root), cfg, ls_data_dir, local_root)
    counts = {"votes new": c.sync.new, "votes updated": c.sync.updated, "votes deleted": c.sync.deleted,
              "copies re-pushed": c.requeued, "clips to expert review": c.review,
              "clips given one more annotator": c.extra, "intents for new clips": c.new_clips,
              "tasks pushed": c.push.created, "labels": c.labels}
    publish("ferv-annotation-cycle", "Annotation cycle", counts,
            {"Copies by verdict": [{"verdict": k, "copies": v} for k, v in sorted(c.verdicts.items())],
             "Seconds per step": [{"step": k, "seconds": round(v, 2)} for k, v in c.seconds.items()],
             **({"Notes": [{"note": n} for n in c.notes]} if c.notes else {})})
    create_markdown_artifact(key="ferv-annotation-qc", markdown=artifact_markdown(qc_report(root, cfg)),
                             description="Annotation QC: progress, gold accuracy, agreement, verdicts")
    return counts
