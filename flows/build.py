"""The whole build for a config: acquire -> clips -> push, and with simulated annotators on to a release."""

from __future__ import annotations

from prefect import flow, get_run_logger, task

from annotation.client import connect
from annotation.demo_annotators import simulate_workdir
from flows import acquire, clips, labelling, release
from flows.runtime import resolve_config, workdir_of
from schemas.config import BuildConfig


@task
def simulate_annotators(workdir: str, cfg: BuildConfig, n: int, ls_data_dir: str | None) -> int:
    client = connect(cfg.labelstudio, data_dir=ls_data_dir)
    return simulate_workdir(workdir, client, n, seed=cfg.annotation.seed)


@flow(name="build-dataset")
def build_dataset(config: str | dict | BuildConfig | None = None, workdir: str | None = None,
                  until: str = "push", simulate: int = 0, ls_data_dir: str | None = None,
                  local_root: str | None = None) -> dict:
    """Run the stages of a build in order, up to ``until`` (clips | push | release).

    Between push and release people annotate in Label Studio (``sync-votes`` runs on a schedule); with
    ``simulate`` > 0 that many simulated annotators label every task instead, so the run reaches a release.
    """
    if until not in ("clips", "push", "release"):
        raise ValueError(f"until must be clips, push or release, not {until!r}")
    cfg = resolve_config(config, workdir)
    root = str(workdir_of(cfg))
    out: dict = {"workdir": root}
    # each flow runs its tasks on the task runner its config chooses (flows.runtime.ConfigTaskRunner)
    out["acquire"] = acquire.acquire_flow(config=cfg)
    out["clips"] = clips.make_clips_flow(config=cfg)
    if until == "clips":
        return out
    out["push"] = labelling.push_tasks_flow(config=cfg, ls_data_dir=ls_data_dir, local_root=local_root)
    if until == "push" and not simulate:
        return out
    if simulate:
        posted = simulate_annotators(root, cfg, simulate, ls_data_dir)
        get_run_logger().info("%d simulated annotations posted", posted)
    out["sync"] = labelling.sync_votes_flow(config=cfg, ls_data_dir=ls_data_dir)
    if until == "release" or simulate:
        out["release"] = release.release_flow(config=cfg)
    return out

