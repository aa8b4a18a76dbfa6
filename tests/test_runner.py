"""The runner (pipeline/run.py): markers, parts, failure rows recorded and cleared, retries; locally and through
the Prefect flow."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest

from pipeline import run as runner
from pipeline.failures import clear_failures, failure_of, record_failures
from pipeline.media import DecodeError, write_video
from schemas.manifests import read_manifest
from schemas.records import ShotRecord


def test_failure_rows_are_replaced_then_cleared(tmp_path):
    record_failures(tmp_path, [failure_of("clips", "src-1", ValueError("bad moov atom"))])
    record_failures(tmp_path, [failure_of("clips", "src-1", ValueError("still bad\nsecond line"))])
    frame = read_manifest(tmp_path, "failures")
    assert frame[["stage", "input_id", "error_kind", "message"]].values.tolist() == [
        ["clips", "src-1", "ValueError", "still bad second line"]]
    clear_failures(tmp_path, "clips", ["src-1"])
    assert read_manifest(tmp_path, "failures").empty


@dataclass
class Flaky:
    """A toy stage: one shot row per input; input ``bad`` fails always, ``flaky`` fails on its first call."""

    name = "toy"
    parts = {"shots": ["source_id", "shot_index"]}
    into = ""
    key_columns = ()
    stamp: str = "v1"

    def __post_init__(self):
        self.calls: dict[str, int] = {}

    def key(self, record: str) -> str:
        return record

    def __call__(self, record: str) -> runner.Outcome:
        self.calls[record] = self.calls.get(record, 0) + 1
        if record == "bad" or (record == "flaky" and self.calls[record] == 1):
            raise DecodeError(f"{record}: decoding failed; re-download it")
        return runner.Outcome(record, rows={"shots": [ShotRecord(record, 0, 0, 10, 0.0, 0.4)]})


def test_runner_records_clears_retries_and_skips_what_is_done(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "_backoff", lambda attempt: 0.0)
    stage = Flaky()
    first = runner.run_all(tmp_path, stage, ["good", "bad", "flaky"])
    assert (first.processed, first.failed) == (1, 2) and first.counts == {"shots": 1}
    failures = read_manifest(tmp_path, "failures")
    assert sorted(zip(failures["input_id"], failures["error_kind"])) == [("bad", "DecodeError"),
                                                                         ("flaky", "DecodeError")]
    again = runner.run_all(tmp_path, stage, ["good", "bad", "flaky"], retries=1)
    assert (again.skipped, again.processed, again.failed) == (1, 1, 1)  # good: marker matches; flaky: done now
    assert stage.calls == {"good": 1, "bad": 3, "flaky": 2}
    assert read_manifest(tmp_path, "failures")["input_id"].tolist() == ["bad"]  # flaky's row is cleared
    assert sorted(read_manifest(tmp_path, "shots")["source_id"]) == ["flaky", "good"]
    changed = runner.run_all(tmp_path, Flaky(stamp="v2"), ["good"])  # other settings: the marker does not match
    assert changed.processed == 1


@dataclass
class Shuffled(Flaky):
    """A toy stage whose shot rows come out of key order, with two rows sharing a key (told apart by frames)."""

    def __call__(self, record: str) -> runner.Outcome:
        if record == "bad":
            raise DecodeError(f"{record}: decoding failed; re-download it")
        rows = [ShotRecord(record, i, f, f + 5, f / 25, (f + 5) / 25) for i, f in [(2, 40), (0, 0), (1, 20), (0, 10)]]
        return runner.Outcome(record, rows={"shots": rows})


def test_merged_manifest_is_sorted_on_the_stage_keys_and_keeps_tied_rows_in_their_order(tmp_path):
    summary = runner.run_all(tmp_path, Shuffled(), ["src-b", "bad", "src-a"])
    shots = read_manifest(tmp_path, "shots")
    assert summary.counts == {"shots": 8} and summary.failed == 1
    expected = [(source, i, f) for source in ("src-a", "src-b") for i, f in [(0, 0), (0, 10), (1, 20), (2, 40)]]
    assert list(zip(shots["source_id"], shots["shot_index"], shots["start_frame"])) == expected


@pytest.fixture(scope="module")
def prefect():
    from prefect.testing.utilities import prefect_test_harness

    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    with prefect_test_harness(server_startup_timeout=180):
        yield


def _artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return found[0].data if found else ""


@pytest.mark.slow
def test_a_source_that_succeeds_on_the_flows_retry_is_done_not_failed(prefect, centerface_models_dir, tmp_path,
                                                                      monkeypatch):
    """The clip flow's task fails once for one source (its failure row is written), Prefect retries it, it
    succeeds: no failure row is left and the artifact counts it done, none failed."""
    from flows import clips as clip_flow
    from pipeline.clips import ClipsStage
    from schemas.config import BuildConfig
    from tests.clips_support import make_workdir

    videos = []
    for name, shade in (("a.mp4", 40), ("b.mp4", 160)):
        videos.append((tmp_path / name, "Talkshow"))
        write_video(tmp_path / name, (np.full((48, 64, 3), (shade + i) % 256, np.uint8) for i in range(30)), fps=25)
    work = tmp_path / "work"
    ids = make_workdir(work, videos)
    flaky = ids["b.mp4"]
    seen: list[list[str]] = []
    real = ClipsStage.__call__

    def once_broken(self, record):
        if record.source_id == flaky and not seen:
            seen.append([])
            raise DecodeError(f"{record.path}: decoding failed (a network file system hiccup)")
        if record.source_id == flaky:  # the retry: the first attempt's failure row is there
            seen.append(read_manifest(work, "failures")["input_id"].tolist())
        return real(self, record)

    monkeypatch.setattr(ClipsStage, "__call__", once_broken)
    monkeypatch.setattr(clip_flow, "clips_for_source", clip_flow.clips_for_source.with_options(retry_delay_seconds=0))
    cfg = BuildConfig.model_validate({"workdir": str(work), "faces": {"models_dir": str(centerface_models_dir),
                                                                       "device": "cpu"}})
    counts = clip_flow.make_clips_flow(config=cfg)
    assert seen == [[], [flaky]]  # failed once (recorded), then retried
    assert read_manifest(work, "failures").empty
    assert counts["done"] == 2 and counts["failed"] == 0
    artifact = _artifact("ferv-clips")
    assert "| done | 2 |" in artifact and "| failed | 0 |" in artifact
    assert sorted(read_manifest(work, "shots")["source_id"].unique()) == sorted(ids.values())
