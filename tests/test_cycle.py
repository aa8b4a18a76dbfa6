"""The trusted-labelling loop against a real Label Studio, with simulated annotators of known accuracy:
gold settled by experts in the gold project, gold mixed into new groups, an Unacceptable copy re-pushed
for another annotator by the cycle alone, a kept group in expert review, the expert's override final, the
QC report and the labels agreeing on every copy, and a cycle killed mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from annotation.cycle import run_cycle
from annotation.gold import plan_gold, read_gold
from annotation.push import copy_title, push_plan
from annotation.report import qc_report
from annotation.simulate import SimulatedAnnotator, choice_result
from annotation.tasks_api import iter_tasks
from annotation.trust import ACCEPT, KEPT_VERDICTS, PENDING, UNACCEPTABLE, load_state
from annotation.users import ensure_user
from schemas.manifests import read_manifest, write_manifest
from schemas.taxonomy import TAXONOMY
from tests.labelstudio_support import make_workdir
from pipeline.synthetic import gold_frame, truth_labels

pytestmark = pytest.mark.labelstudio
REPO = Path(__file__).resolve().parents[1]


def _tasks(workdir: Path, role: str, **where) -> dict[str, int]:
    """clip_id -> task id of the tasks of one project role (and group/copy/attempt), from tasks.parquet."""
    t = read_manifest(workdir, "tasks")
    t = t[t["project_role"] == role]
    for col, value in where.items():
        t = t[t[col] == value]
    return dict(zip(t["clip_id"], t["task_id"].astype(int)))


def _agree(workdir: Path, cfg) -> pd.DataFrame:
    """The QC report's copies are the labels' copies, and exactly the kept copies' votes make the labels."""
    state = load_state(workdir, cfg)
    report = qc_report(workdir, cfg)
    pd.testing.assert_frame_equal(report.copies, state.verdicts)
    crowd = state.votes[state.votes["role"] == "crowd"]
    kept = state.verdicts.loc[state.verdicts["verdict"].isin(KEPT_VERDICTS)]
    counted = crowd.merge(kept[["group_id", "copy_index", "attempt", "annotator"]],
                          on=["group_id", "copy_index", "attempt", "annotator"])
    counted = pd.concat([counted, state.votes[state.votes["role"] == "expert"]])
    counted = counted[~counted["clip_id"].isin(state.gold["clip_id"])]
    labels = read_manifest(workdir, "labels").set_index("clip_id")
    expected = counted.groupby("clip_id").size()
    assert labels.loc[expected.index, "n_votes"].to_dict() == expected.to_dict()
    return report.copies


def test_the_loop_runs_itself_from_gold_to_expert_review(labelstudio, tmp_path):
    client = labelstudio.client
    ids = make_workdir(tmp_path, 24)
    truth = truth_labels(ids, seed=5)
    cfg = labelstudio.config(group_size=20, min_gold_per_group=4)
    title = cfg.labelstudio.project_title

    # experts settle 4 gold clips in the gold project; the cycle syncs them into gold.parquet
    assert plan_gold(tmp_path, n=4) == 4
    push_plan(tmp_path, cfg, client, local_root=labelstudio.clips_root)
    gold_tasks = _tasks(tmp_path, "gold")
    expert = SimulatedAnnotator(ensure_user(client, f"{title}-gold-expert@ferv.local", "expert"), 1.0)
    expert.label(client, gold_tasks, truth)
    first = run_cycle(tmp_path, cfg, client, local_root=labelstudio.clips_root)
    gold = read_gold(tmp_path).set_index("clip_id")
    assert sorted(gold.index) == sorted(gold_tasks) and (gold["label"] == gold.index.map(truth)).all()
    assert set(gold["expert"]) == {expert.user.email}

    # the same cycle planned the other 20 clips into one group with the 4 gold clips in each copy
    assert first.new_clips == 3 * 24
    copies = read_manifest(tmp_path, "tasks").query("project_role == 'copy'")
    assert len(copies) == 3 * 24 and copies.groupby("copy_index")["is_gold"].sum().tolist() == [4, 4, 4]
    assert set(copies.loc[copies["is_gold"], "clip_id"]) == set(gold_tasks)
    by_copy = [_tasks(tmp_path, "copy", copy_index=c) for c in range(3)]

    # two reliable annotators; the third answers up to one gold clip, then the rest, always wrong
    good = [SimulatedAnnotator(ensure_user(client, f"{title}-good{i}@ferv.local", "crowd"), 1.0) for i in (1, 2)]
    for sim, tasks in zip(good, by_copy):
        sim.label(client, tasks, truth)
    bad = SimulatedAnnotator(ensure_user(client, f"{title}-bad@ferv.local", "crowd"), 0.0)
    order = read_manifest(tmp_path, "plan").query("project_role == 'copy' and copy_index == 2").sort_values("position")
    first_gold = order["is_gold"].to_numpy().argmax()
    head = order["clip_id"].iloc[:first_gold + 1].tolist()
    bad.label(client, {c: by_copy[2][c] for c in head}, {c: truth[c] for c in head})
    run_cycle(tmp_path, cfg, client, local_root=labelstudio.clips_root)
    verdicts = _agree(tmp_path, cfg).set_index("annotator")
    # 1 of 4 gold answered: Pending for the report and the labels alike (its votes are not counted)
    assert verdicts.loc[bad.user.email, ["gold_answered", "gold_planned", "verdict"]].tolist() == [1, 4, PENDING]
    assert verdicts.loc[[s.user.email for s in good], "verdict"].tolist() == [ACCEPT, ACCEPT]
    assert _tasks(tmp_path, "redo") == {} and _tasks(tmp_path, "review") == {}

    rest = order["clip_id"].iloc[first_gold + 1:].tolist()
    bad.label(client, {c: by_copy[2][c] for c in rest}, truth)
    cycled = run_cycle(tmp_path, cfg, client, local_root=labelstudio.clips_root)
    verdicts = _agree(tmp_path, cfg).set_index("annotator")
    assert verdicts.loc[bad.user.email, "verdict"] == UNACCEPTABLE
    # no hand step: the cycle pushed copy 3 again (attempt 1, same clips, same order) to the requeue project
    assert cycled.requeued == 24
    redo = read_manifest(tmp_path, "tasks").query("project_role == 'redo'")
    assert sorted(redo["clip_id"]) == sorted(by_copy[2]) and set(redo["attempt"]) == {1}
    assert set(redo["copy_index"]) == {2} and redo["project_id"].nunique() == 1
    assert client.sdk.projects.get(int(redo["project_id"].iloc[0])).title == f"{title} requeue"
    assert run_cycle(tmp_path, cfg, client, local_root=labelstudio.clips_root).push.created == 0  # nothing twice

    # another annotator does the re-pushed copy; the group is kept and reaches expert review by itself
    redo_tasks = _tasks(tmp_path, "redo")
    SimulatedAnnotator(ensure_user(client, f"{title}-redo@ferv.local", "crowd"), 1.0).label(client, redo_tasks, truth)
    reviewed = run_cycle(tmp_path, cfg, client, local_root=labelstudio.clips_root)
    assert reviewed.review == 20
    review = _tasks(tmp_path, "review")
    assert sorted(review) == sorted(set(ids) - set(gold_tasks))
    target = sorted(review)[0]
    shown = client.sdk.tasks.get(str(review[target])).data["crowd_votes"]
    assert shown.startswith(f"{truth[target]} 3")  # the reviewer sees the crowd's counted votes (and their words)

    # the expert overrides one clip: that is the final label; the rest keep the crowd's (right) label
    override = next(e for e in TAXONOMY.expressions if e.name != truth[target])
    boss = ensure_user(client, f"{title}-reviewer@ferv.local", "expert")
    client.sdk.annotations.create(review[target], result=choice_result(override.descriptors[0]),
                                  completed_by=boss.id, lead_time=3.0)
    run_cycle(tmp_path, cfg, client, local_root=labelstudio.clips_root)
    _agree(tmp_path, cfg)
    labels = read_manifest(tmp_path, "labels").set_index("clip_id")
    assert labels.loc[target, ["label", "crowd_label", "source", "status"]].tolist() == [
        override.name, truth[target], "expert", "accepted"]
    others = labels.drop(index=[target, *gold_tasks])
    assert (others["label"] == others.index.map(truth)).all() and (others["source"] == "crowd").all()
    assert (labels.loc[list(gold_tasks), "status"] == "gold").all()


def _keys_in_label_studio(client, project_id: int) -> list[str]:
    return [(t.get("meta") or {}).get("task_key") for t in iter_tasks(client, project_id)]


def test_cycle_killed_mid_run_then_rerun_pushes_nothing_twice_and_loses_no_vote(labelstudio, tmp_path):
    client = labelstudio.client
    ids = make_workdir(tmp_path, 40)
    truth = truth_labels(ids, seed=2)
    write_manifest(tmp_path, "gold", gold_frame({c: truth[c] for c in ids[:3]}))
    cfg = labelstudio.config(group_size=20)
    run_cycle(tmp_path, cfg, client, local_root=labelstudio.clips_root)
    first = _tasks(tmp_path, "copy", copy_index=0)
    annotator = SimulatedAnnotator(ensure_user(client, f"{cfg.labelstudio.project_title}-k@ferv.local", "crowd"), 1.0)
    posted = annotator.label(client, first, truth)

    make_workdir(tmp_path, 100)  # 60 new clips for the next cycle to plan and push, slowly
    config = tmp_path / "cycle.yaml"
    slow = cfg.model_dump()
    slow["labelstudio"]["batch_size"] = 2
    config.write_text(yaml.safe_dump(slow))
    env = {**labelstudio.env(), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "cli.app", "annotate", "cycle", str(tmp_path), "-c", str(config)],
                            env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    copy1 = next(iter(read_manifest(tmp_path, "tasks").query("copy_index == 0")["project_id"]))
    before = client.sdk.projects.get(int(copy1)).task_number
    deadline = time.monotonic() + 300
    while client.sdk.projects.get(int(copy1)).task_number < before + 6:  # mid-push
        assert proc.poll() is None, f"the cycle ended before it could be killed: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "the cycle never started pushing"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    rerun = run_cycle(tmp_path, cfg, client, local_root=labelstudio.clips_root)
    assert rerun.push.recovered >= 6  # imported by the killed cycle, not recorded: found by key, not imported again
    plan = read_manifest(tmp_path, "plan")
    tasks = read_manifest(tmp_path, "tasks")
    assert len(plan) == 3 * (37 + 2 + 60 + 3)  # 97 clips in 5 groups with one gold clip each, 3 copies
    for pid in tasks["project_id"].unique():
        keys = _keys_in_label_studio(client, int(pid))
        assert len(keys) == len(set(keys)), "a task was pushed twice"
    assert len(tasks) == len(plan) and tasks["task_id"].is_unique
    assert sorted(tasks["task_id"]) == sorted(t for pid in tasks["project_id"].unique()
                                              for t in (x["id"] for x in iter_tasks(client, int(pid))))
    votes = read_manifest(tmp_path, "votes")
    assert sorted(votes["annotation_id"]) == sorted(a for a, _ in posted.values())  # each once, none lost
    assert not votes["deleted"].any() and votes["server"].str.startswith(f"{client.url} org ").all()
    assert copy_title(cfg.labelstudio, 0) == f"{cfg.labelstudio.project_title} copy 1"
