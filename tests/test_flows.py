"""The Prefect flows end to end: sample sources -> release against the real Label Studio, a failing source,
the Dask runner, and a build killed during clip generation that resumes without duplicates."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from prefect.testing.utilities import prefect_test_harness

from pipeline.release import check_release
from schemas.config import BuildConfig
from schemas.manifests import read_manifest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect():
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    with prefect_test_harness(server_startup_timeout=180):
        yield


def _build_cfg(root: Path, samples: Path, models: Path, **extra) -> BuildConfig:
    """A demo-like build over a copy of the sample sources, with the test's model cache."""
    shutil.copytree(samples, root / "samples")
    data = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())
    data["workdir"] = str(root)
    data.setdefault("faces", {})["models_dir"] = str(models)
    for key, value in extra.items():
        data.setdefault(key, {}).update(value) if isinstance(value, dict) else data.__setitem__(key, value)
    return BuildConfig.model_validate(data)


def _artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return found[0].data if found else ""


@pytest.fixture(scope="module")
def e2e(prefect, labelstudio, samples, centerface_models_dir, tmp_path_factory):
    from flows.build import build_dataset

    root = Path(tmp_path_factory.mktemp("e2e", numbered=True)) / "work"
    cfg = _build_cfg(root, samples, centerface_models_dir, labelstudio={"url": labelstudio.url, "project_title": "e2e"})
    (root / "samples" / "Interview" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    result = build_dataset(config=cfg, simulate=3, ls_data_dir=str(labelstudio.data_dir),
                           local_root=str(labelstudio.clips_root))
    return root, cfg, result


def test_sample_sources_to_a_checked_release(e2e, labelstudio):
    root, cfg, result = e2e
    clips = read_manifest(root, "clips")
    assert len(clips) >= 6 and set(clips["scene"]) == {"Talkshow", "Interview", "Speech"}
    tasks = read_manifest(root, "tasks")
    assert len(tasks) == 3 * len(clips)
    votes = read_manifest(root, "votes")
    assert len(votes) == len(tasks) and votes["annotator"].nunique() == 3
    out = Path(result["release"]["out"])
    assert check_release(out) == []
    lines = (out / "4_setups" / "All_scenes" / "train_All.csv").read_text().splitlines()
    lines += (out / "4_setups" / "All_scenes" / "test_All.csv").read_text().splitlines()
    assert len(lines) == result["release"]["clips"] > 0
    labels = read_manifest(root, "labels")
    assert (labels["status"] == "accepted").sum() == result["release"]["clips"]


def test_a_failing_source_does_not_fail_the_flow(e2e):
    root, _, result = e2e
    failures = read_manifest(root, "failures")
    broken = failures[failures["message"].str.contains("broken.mp4")]
    assert len(broken) == 1 and broken.iloc[0]["stage"] == "acquire"
    assert broken.iloc[0]["input_id"] in _artifact("ferv-acquire")
    assert len(read_manifest(root, "sources")) == 5  # the five demo sources (pipeline.samples)


def test_dask_runner_makes_the_same_clips_as_threads(e2e, samples, centerface_models_dir, tmp_path):
    from flows import acquire, clips

    root, _, _ = e2e
    cfg = _build_cfg(tmp_path / "work", samples, centerface_models_dir, runner={"kind": "dask", "dask_workers": 2})
    # the flows pick Dask from their own config, as a deployment run does
    acquire.acquire_flow(config=cfg, local_dir=str(tmp_path / "work" / "samples"), search=False)
    clips.make_clips_flow(config=cfg)
    assert sorted(read_manifest(cfg.workdir, "clips")["clip_id"]) == sorted(read_manifest(root, "clips")["clip_id"])


def test_killed_build_resumes_with_the_same_clips_and_no_duplicate_tasks(e2e, labelstudio, samples, centerface_models_dir,
                                                                         tmp_path):
    root_ref, _, _ = e2e
    work = tmp_path / "work"
    cfg = _build_cfg(work, samples, centerface_models_dir, labelstudio={"url": labelstudio.url, "project_title": "resume"})
    config = tmp_path / "build.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    env = {**labelstudio.env(), "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}

    def run_env(name: str) -> dict[str, str]:
        # A killed machine's temporary Prefect server is gone with it: each run starts its own.
        return {**env, "PREFECT_HOME": str(tmp_path / f"prefect-{name}")}

    cmd = [sys.executable, "-m", "cli.app", "run", str(config), "--until", "clips"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=run_env("killed"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list((work / "parts").glob("*/DONE")):
        assert proc.poll() is None, "the build ended before it could be killed"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # mid clip generation: one source done, others not
    proc.wait()
    done = list((work / "parts").glob("*/DONE"))
    assert 1 <= len(done) < 3, "the kill should land during clip generation"
    first = {p: p.stat().st_mtime_ns for p in done}

    rerun = subprocess.run([sys.executable, "-m", "cli.app", "run", str(config), "--until", "push"], cwd=REPO,
                           env=run_env("rerun"), capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in first} == first  # finished sources were not redone
    assert sorted(read_manifest(work, "clips")["clip_id"]) == sorted(read_manifest(root_ref, "clips")["clip_id"])
    again = subprocess.run([sys.executable, "-m", "cli.app", "run", str(config), "--until", "push"], cwd=REPO,
                           env=run_env("again"), capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    tasks = read_manifest(work, "tasks")
    n_clips = len(read_manifest(work, "clips"))
    assert len(tasks) == 3 * n_clips
    client = labelstudio.client
    for project_id in tasks["project_id"].unique():
        assert len(client.task_keys(int(project_id))) == n_clips  # no duplicate tasks in Label Studio
