"""Evaluation of predictions on a release's test split: WAR / UAR by hand, coverage errors, output files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate import EXPRESSIONS, EvaluationError, evaluate

# path, true expression, prediction. Conflict and School are Daily Life (DL) scenes, Action is WIS.
CASES = [
    ("Conflict/Happy/0000", "Happy", "Happy"),
    ("Conflict/Happy/0001", "Happy", "Sad"),
    ("Conflict/Sad/0000", "Sad", "Sad"),
    ("School/Angry/0000", "Angry", "Angry"),
    ("School/Sad/0000", "Sad", "Happy"),
    ("Action/Happy/0000", "Happy", "Happy"),
    ("Action/Happy/0001", "Happy", "Happy"),
    ("Action/Fear/0000", "Fear", "Neutral"),
]
TRAIN = [("Conflict/Happy/0002", "Happy"), ("Action/Sad/0000", "Sad")]


def _release(root: Path) -> Path:
    """A hand-made release: the All_scenes split lists (no header, one space) and metadata.parquet."""
    setups = root / "4_setups" / "All_scenes"
    setups.mkdir(parents=True)
    (setups / "test_All.csv").write_text("".join(f"{p} {e}\n" for p, e, _ in CASES), encoding="utf-8")
    (setups / "train_All.csv").write_text("".join(f"{p} {e}\n" for p, e in TRAIN), encoding="utf-8")
    rows = [(p, e, "test") for p, e, _ in CASES] + [(p, e, "train") for p, e in TRAIN]
    meta = pd.DataFrame(rows, columns=["path", "expression", "split"])
    meta["clip_id"] = [f"clip-{i:02d}" for i in range(len(meta))]
    meta["scene"] = meta["path"].str.split("/").str[0]
    meta["scenario"] = meta["scene"].map({"Conflict": "DL", "School": "DL", "Action": "WIS"})
    meta.to_parquet(root / "metadata.parquet", index=False)
    return root


def _write(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def _label_predictions(tmp_path: Path, cases=CASES) -> Path:
    frame = pd.DataFrame({"path": [c[0] for c in cases], "prediction": [c[2] for c in cases]})
    return _write(tmp_path / "pred.csv", frame)


def test_war_uar_overall_per_scenario_and_per_scene_by_hand(tmp_path):
    release = _release(tmp_path / "release")
    result = evaluate(release, _label_predictions(tmp_path), tmp_path / "eval")
    # 5 of 8 right. Recall per expression: Happy 3/4, Sad 1/2, Angry 1/1, Fear 0/1 -> UAR = 2.25/4
    assert result.n_clips == 8
    assert result.war == pytest.approx(5 / 8)
    assert result.uar == pytest.approx((3 / 4 + 1 / 2 + 1 + 0) / 4)
    # DL (Conflict + School): 3 of 5 right; Happy 1/2, Sad 1/2, Angry 1/1 -> UAR 2/3
    # WIS (Action): 2 of 3 right; Happy 2/2, Fear 0/1 -> UAR 1/2
    scenario = result.per_scenario.set_index("scenario")
    assert scenario.index.tolist() == ["DL", "WIS"]
    assert scenario["n_clips"].tolist() == [5, 3]
    assert scenario["war"].tolist() == pytest.approx([3 / 5, 2 / 3])
    assert scenario["uar"].tolist() == pytest.approx([2 / 3, 1 / 2])
    # Conflict: 2/3 right, Happy 1/2, Sad 1/1 -> UAR 3/4; School: 1/2, Angry 1, Sad 0 -> 1/2; Action: 2/3, 1/2
    scene = result.per_scene.set_index("scene")
    assert scene.loc[["Conflict", "School", "Action"], "war"].tolist() == pytest.approx([2 / 3, 1 / 2, 2 / 3])
    assert scene.loc[["Conflict", "School", "Action"], "uar"].tolist() == pytest.approx([3 / 4, 1 / 2, 1 / 2])
    assert scene.loc["School", "scenario"] == "DL"

    confusion = result.confusion
    assert confusion.index.tolist() == EXPRESSIONS and confusion.columns.tolist() == EXPRESSIONS
    expected = pd.DataFrame(0, index=EXPRESSIONS, columns=EXPRESSIONS)
    for true, pred, n in [("Happy", "Happy", 3), ("Happy", "Sad", 1), ("Sad", "Sad", 1), ("Sad", "Happy", 1),
                          ("Angry", "Angry", 1), ("Fear", "Neutral", 1)]:
        expected.loc[true, pred] = n
    assert (confusion.to_numpy() == expected.to_numpy()).all()

    out = tmp_path / "eval"
    saved = json.loads((out / "results.json").read_text())
    assert saved["war"] == pytest.approx(5 / 8) and saved["confusion"]["matrix"] == expected.to_numpy().tolist()
    assert [r["scenario"] for r in saved["per_scenario"]] == ["DL", "WIS"]
    assert pd.read_csv(out / "confusion.csv", index_col=0).to_numpy().tolist() == expected.to_numpy().tolist()
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pd.read_csv(out / "per_scene.csv")["n_clips"].sum() == 8


def test_scores_by_clip_id_pick_the_highest_score(tmp_path):
    release = _release(tmp_path / "release")
    meta = pd.read_parquet(release / "metadata.parquet").set_index("path")["clip_id"]
    rng = np.random.default_rng(0)
    scores = pd.DataFrame(rng.random((len(CASES), 7)) * 0.5, columns=EXPRESSIONS)
    for i, (_, _, pred) in enumerate(CASES):
        scores.loc[i, pred] = 0.9  # the predicted expression gets the top score
    scores.insert(0, "clip_id", [meta[p] for p, _, _ in CASES])
    result = evaluate(release, _write(tmp_path / "scores.csv", scores.iloc[::-1]))
    assert result.war == pytest.approx(5 / 8) and result.uar == pytest.approx(2.25 / 4)
    assert result.files == {}


@pytest.mark.parametrize("change, message", [
    (lambda f: f.iloc[1:], "1 of 8 test clips have no prediction: Conflict/Happy/0000"),
    (lambda f: pd.concat([f, f.iloc[[2]]]), "predicted more than once: Conflict/Sad/0000"),
    (lambda f: pd.concat([f, pd.DataFrame({"path": ["Conflict/Happy/0002"], "prediction": ["Happy"]})]),
     "not test clips: Conflict/Happy/0002"),
    (lambda f: f.assign(prediction=f["prediction"].replace("Neutral", "Contempt")), "unknown expressions Contempt"),
    (lambda f: f.rename(columns={"path": "clip"}), "needs a `path` or a `clip_id` column"),
    (lambda f: f.drop(columns="prediction").assign(Happy=1.0), "missing \\['Angry'"),
], ids=["missing", "duplicate", "train-clip", "unknown-expression", "no-key", "too-few-scores"])
def test_bad_predictions_raise_clear_errors(tmp_path, change, message):
    release = _release(tmp_path / "release")
    frame = pd.DataFrame({"path": [c[0] for c in CASES], "prediction": [c[2] for c in CASES]})
    with pytest.raises(EvaluationError, match=message):
        evaluate(release, _write(tmp_path / "pred.csv", change(frame)))


def test_unknown_clip_id_and_missing_release_are_named(tmp_path):
    release = _release(tmp_path / "release")
    bad = _write(tmp_path / "ids.csv", pd.DataFrame({"clip_id": ["clip-00", "nope"], "prediction": ["Happy", "Sad"]}))
    with pytest.raises(EvaluationError, match="clip ids not in the release: nope"):
        evaluate(release, bad)
    with pytest.raises(EvaluationError, match="test_All.csv does not exist"):
        evaluate(tmp_path / "nowhere", bad)


def test_cli_evaluate_prints_tables_and_writes_files(tmp_path):
    from typer.testing import CliRunner

    from cli.app import app

    release = _release(tmp_path / "release")
    done = CliRunner().invoke(app, ["evaluate", str(release), str(_label_predictions(tmp_path))],
                              env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "WAR 0.6250  UAR 0.5625" in done.output and "Conflict" in done.output and "WIS" in done.output
    assert (tmp_path / "pred-eval" / "confusion.png").is_file()
    bad = CliRunner().invoke(app, ["evaluate", str(release), str(_label_predictions(tmp_path, CASES[:-1]))])
    assert bad.exit_code == 2 and "no prediction: Action/Fear/0000" in bad.stderr  # a user error: one line
    assert bad.stderr.count("\n") == 1 and bad.stderr.startswith("error: ")


def test_aggregated_work_dir_released_then_evaluated(tmp_path):
    """End to end with the real release builder: votes -> aggregate -> release -> evaluate."""
    from annotation.aggregate import aggregate
    from pipeline.release import build_release
    from schemas.config import BuildConfig
    from tests.release_support import default_plans, make_workdir

    work = make_workdir(tmp_path / "work", default_plans())
    cfg = BuildConfig(aggregate={"trusted_copies": False})
    labels = aggregate(work, cfg)
    assert set(labels["status"]) == {"accepted", "unusable"}  # unanimous votes; one PASS clip
    release = tmp_path / "release"
    build_release(work, release, cfg)
    meta = pd.read_parquet(release / "metadata.parquet")
    test = meta[meta["split"] == "test"]
    assert len(test) and set(test["clip_id"]) <= set(labels["clip_id"])
    perfect = _write(tmp_path / "perfect.csv",
                     test[["clip_id", "expression"]].rename(columns={"expression": "prediction"}))
    result = evaluate(release, perfect)
    assert (result.war, result.uar, result.n_clips) == (1.0, 1.0, len(test))
    neutral = _write(tmp_path / "neutral.csv", test[["path"]].assign(prediction="Neutral"))
    result = evaluate(release, neutral)
    assert result.war == pytest.approx((test["expression"] == "Neutral").mean())
    assert result.uar == pytest.approx(1 / test["expression"].nunique())  # recall 1 for Neutral, 0 elsewhere
