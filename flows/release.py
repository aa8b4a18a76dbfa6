"""Release flow: aggregate votes into labels, write the FERV39k-layout release, check it."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, task

from annotation.aggregate import aggregate, read_agreement
from flows.runtime import log_progress, publish, resolve_config, skipped, workdir_of
from pipeline.release import build_release, check_release
from schemas.config import BuildConfig
from schemas.manifests import read_manifest


@task
def aggregate_votes(workdir: str, cfg: BuildConfig) -> dict:
    labels = aggregate(workdir, cfg)
    return labels["status"].value_counts().to_dict()


@task
def write_release(workdir: str, out: str, cfg: BuildConfig):
    return build_release(Path(workdir), Path(out), cfg, progress=log_progress(get_run_logger()))


@flow(name="release")
def release_flow(config: str | dict | BuildConfig | None = None, workdir: str | None = None,
                 out: str | None = None) -> dict:
    """Aggregate votes (labels.parquet) and write the release to ``out`` (default WORKDIR/release)."""
    cfg = resolve_config(config, workdir)
    root = workdir_of(cfg)
    if read_manifest(root, "votes").empty:
        return skipped(f"no votes in {root / 'votes.parquet'} to release: push tasks, annotate, run sync-votes",
                       {"clips": 0})
    out = out or str(root / "release")
    statuses = aggregate_votes(str(root), cfg)
    summary = write_release(str(root), out, cfg)
    problems = check_release(Path(out))
    if problems:
        raise RuntimeError(f"release {out} failed its checks: " + "; ".join(problems[:10]))
    agreement = read_agreement(root)
    counts = {"clips": summary.clips, "train": summary.train, "test": summary.test, "sources": summary.sources,
              "skipped": summary.skipped, **{f"labels {k}": v for k, v in statuses.items()}}
    publish("ferv-release", "Release", counts,
            {"Agreement": [{"figure": k, "value": agreement.get(k)} for k in
                           ("fleiss_kappa", "krippendorff_alpha_nominal", "votes_counted")]})
    return {**counts, "out": out}
