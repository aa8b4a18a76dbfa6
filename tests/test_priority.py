"""Push order and review hints from expression scores (annotation.priority): a quota puts its class first,
gold keeps its slots, off keeps the plan; crowd copies carry no prediction, review and gold tasks do."""

from __future__ import annotations

import pandas as pd
import pytest

from annotation.priority import prioritize, with_prediction
from annotation.push import task_payload
from schemas.config import ExpressionConfig, LabelStudioConfig

PREDICTED = ["Neutral"] * 6 + ["Happy"] * 3 + ["Fear", "Neutral", None]


def clips() -> pd.DataFrame:
    n = len(PREDICTED)
    return pd.DataFrame({
        "clip_id": [f"c{i:02d}" for i in range(n)], "predicted_expression": PREDICTED,
        "predicted_prob": [0.5 + i / 100 for i in range(n)],
        "intensity": [0.1 if p == "Neutral" else 0.8 for p in PREDICTED],
        "scene": "Talkshow", "scenario": "WIS", "scene_path": "clips/s.mp4", "crop_path": "clips/c.mp4",
        "fps": 25.0})


def plan(copies: int = 2) -> pd.DataFrame:
    """Each copy: the clips in its own order, a gold clip at positions 3 and 9."""
    rows = []
    for copy in range(copies):
        ids = [f"c{i:02d}" for i in range(len(PREDICTED))]
        ids = ids[copy:] + ids[:copy]  # a different order per copy
        ids.insert(3, "gold-a")
        ids.insert(9, "gold-b")
        rows += [{"group_id": "g", "copy_index": copy, "clip_id": c, "position": p, "is_gold": c.startswith("gold")}
                 for p, c in enumerate(ids)]
    return pd.DataFrame(rows)


def ordered(rows: pd.DataFrame, copy: int = 0) -> list[str]:
    return rows[rows["copy_index"] == copy].sort_values("position")["clip_id"].tolist()


def test_off_keeps_the_plan():
    rows = plan()
    assert prioritize(rows, clips(), ExpressionConfig()).equals(rows)


def test_a_quota_puts_its_class_first_and_gold_keeps_its_slots():
    rows = prioritize(plan(), clips(), ExpressionConfig(quota={"Happy": 2}))
    for copy in (0, 1):
        order = ordered(rows, copy)
        assert order[:2] == ["c08", "c07"]  # the two Happy clips the model is surest of, surest first
        assert order[3] == "gold-a" and order[9] == "gold-b"
        assert sorted(order) == sorted(ordered(plan(), copy))  # nothing lost or added
    rest = [c for c in ordered(rows, 0)[2:] if not c.startswith("gold")]
    assert rest == [c for c in ordered(plan(), 0) if c not in ("c07", "c08") and not c.startswith("gold")]


def test_expression_order_puts_rare_strong_classes_first_and_unscored_clips_last():
    order = [c for c in ordered(prioritize(plan(), clips(), ExpressionConfig(push_order="expression")))
             if not c.startswith("gold")]
    predicted = dict(zip(clips()["clip_id"], PREDICTED))
    assert [predicted[c] for c in order] == ["Fear"] + ["Happy"] * 3 + ["Neutral"] * 7 + [None]


@pytest.mark.parametrize("role, carries", [("copy", False), ("review", True), ("gold", True)])
def test_only_review_and_gold_tasks_carry_the_model_prediction(role, carries, tmp_path):
    clip = clips().iloc[7]
    row = pd.Series({"group_id": "g", "copy_index": 0 if role == "copy" else -1, "is_gold": role == "gold",
                     "attempt": 0, "task_key": f"{role}|g|0|0|{clip['clip_id']}"})
    task = task_payload(clip, row, LabelStudioConfig(), tmp_path, tmp_path / "clips")
    payload = with_prediction(task, clip, role, ExpressionConfig())
    assert ("predictions" in payload) == carries
    if carries:
        (pred,) = payload["predictions"]
        assert pred["result"][0]["value"]["choices"] == ["Pride"]  # Happy's first descriptor
        assert pred["result"][0]["from_name"] == "descriptor" and pred["score"] == pytest.approx(0.57)
    off = ExpressionConfig(predictions_on=[])
    assert "predictions" not in with_prediction(task, clip, role, off)
    assert "predictions" not in with_prediction({"data": {}}, clips().iloc[11], role, ExpressionConfig())  # unscored


@pytest.mark.labelstudio
def test_through_real_label_studio_quota_first_and_predictions_for_experts_only(labelstudio, tmp_path):
    from annotation.push import REVIEW_COPY, add_intents, intent_rows, push_plan, push_tasks
    from schemas.manifests import read_manifest, write_manifest
    from tests.labelstudio_support import make_workdir

    ids = make_workdir(tmp_path, 6)
    clips = read_manifest(tmp_path, "clips")
    clips["predicted_expression"] = ["Neutral", "Fear", "Neutral", "Neutral", "Fear", "Happy"]
    clips["predicted_prob"] = [0.9, 0.6, 0.8, 0.7, 0.7, 0.9]
    clips["intensity"] = [0.1, 0.7, 0.2, 0.3, 0.6, 0.9]
    write_manifest(tmp_path, "clips", clips)
    cfg = labelstudio.config(gold_fraction=0, min_gold_per_group=0)
    cfg = cfg.model_copy(update={"expression": ExpressionConfig(quota={"Fear": 2})})
    client = labelstudio.client
    push_tasks(tmp_path, cfg, client, local_root=labelstudio.clips_root)
    tasks = read_manifest(tmp_path, "tasks")
    for _, copy in tasks.groupby("copy_index"):  # Label Studio serves a copy's tasks in import order
        assert copy.sort_values("task_id")["clip_id"].tolist()[:2] == [ids[4], ids[1]]  # Fear, surest first
        crowd_task = client.sdk.tasks.get(str(copy["task_id"].iloc[0]))
        assert not crowd_task.predictions
    rows = pd.DataFrame({"clip_id": [ids[5]], "group_id": "review", "copy_index": REVIEW_COPY, "is_gold": False,
                         "position": [0]})
    add_intents(tmp_path, intent_rows(rows, "review"))  # as the cycle does for a kept group
    push_plan(tmp_path, cfg, client, local_root=labelstudio.clips_root)
    review = read_manifest(tmp_path, "tasks").query("project_role == 'review'")
    task = client.sdk.tasks.get(str(review["task_id"].iloc[0]))
    (pred,) = task.predictions
    pred = pred if isinstance(pred, dict) else pred.model_dump()
    assert pred["result"][0]["value"]["choices"] == ["Pride"] and pred["score"] == pytest.approx(0.9)


def test_a_quota_puts_the_groups_holding_its_class_first():
    """Several groups: the group holding the quota's clips is imported first, its quota clip leading."""
    two = pd.concat([plan(1).assign(group_id=g, clip_id=lambda f, g=g: f["clip_id"] + g) for g in ("a", "b")])
    scored = pd.concat([clips().assign(clip_id=lambda f, g=g: f["clip_id"] + g) for g in ("a", "b")])
    scored.loc[scored["clip_id"] == "c09a", "predicted_expression"] = "Neutral"  # only group b holds a Fear
    order = prioritize(two, scored, ExpressionConfig(quota={"Fear": 1}))
    assert order["group_id"].tolist() == ["b"] * 14 + ["a"] * 14
    assert order["clip_id"].iloc[0] == "c09b"
