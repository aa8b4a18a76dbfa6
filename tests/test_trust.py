"""FERV39k's trusted labelling process against known ground truth: groups with gold, copy verdicts,
re-queueing, caps, expert review."""

import numpy as np
import pandas as pd
import pytest

from annotation.aggregate import label_clips, majority, unclear_clips
from annotation.gold import gold_labels
from annotation.trust import (
    ACCEPT, IMPROPER, PENDING, UNACCEPTABLE, counted_votes, current_votes, enforce_caps, expert_decisions,
    judge_copies, plan_groups, requeue, review_queue, trust_state,
)
from schemas.config import AnnotationConfig, BuildConfig
from pipeline.synthetic import gold_frame, truth_labels
from tests.trust_support import LABELS, frame, label_copy, vote, wrong

CFG = AnnotationConfig()  # groups of 100, 5% gold, 3 copies, 80% / 40% gold rates
BUILD = BuildConfig(annotation=CFG)
CLIPS = pd.DataFrame({"clip_id": [f"clip-{i:03d}" for i in range(100)], "scene": "War"})
TRUTH = truth_labels(CLIPS["clip_id"], seed=1)
GOLD_TRUTH = truth_labels([f"gold-{i:02d}" for i in range(30)], seed=2)
GOLD = gold_frame(GOLD_TRUTH)


def _truth(clip: str) -> str:
    return GOLD_TRUTH.get(clip) or TRUTH[clip]


def good(clip, is_gold, seen):
    return _truth(clip)


def mediocre(clip, is_gold, seen):  # right on the first 3 gold clips it meets, wrong on the others
    return _truth(clip) if not is_gold or seen < 3 else wrong(_truth(clip))


def random_on_gold(seed: int):
    rng = np.random.default_rng(seed)
    return lambda clip, is_gold, seen: LABELS[rng.integers(len(LABELS))] if is_gold else _truth(clip)


@pytest.fixture(scope="module")
def plan():
    return plan_groups(CLIPS, GOLD, CFG).assign(attempt=0)


def _labels(votes: pd.DataFrame, plan: pd.DataFrame) -> pd.DataFrame:
    """The labels of non-gold clips, through the one label path (verdicts with the plan, counted votes)."""
    cur = current_votes(votes)
    counted = counted_votes(cur, judge_copies(cur, GOLD, CFG, plan), BUILD)
    labels = label_clips(counted, BUILD.aggregate, "majority", gold_labels(GOLD))
    return labels[labels["status"] != "gold"].reset_index(drop=True)


# -- planning ---------------------------------------------------------------------------------------------


def test_plan_mixes_five_percent_gold_into_three_shuffled_copies(plan):
    assert plan["group_id"].nunique() == 1
    per_copy = plan.groupby("copy_index").agg(n=("clip_id", "size"), gold=("is_gold", "sum"))
    assert per_copy["n"].tolist() == [105] * 3 and per_copy["gold"].tolist() == [5] * 3  # 5 of 105 = 4.8%
    assert plan.loc[plan["is_gold"], "clip_id"].isin(GOLD["clip_id"]).all()
    assert set(plan.loc[~plan["is_gold"], "clip_id"]) == set(CLIPS["clip_id"])
    orders = [plan[plan["copy_index"] == c].sort_values("position")["clip_id"].tolist() for c in range(3)]
    assert sorted(orders[0]) == sorted(orders[1]) == sorted(orders[2])  # same clips ...
    assert orders[0] != orders[1] != orders[2] != orders[0]  # ... in its own order per copy
    assert (plan.groupby("copy_index")["position"].agg(sorted).map(list) == [list(range(105))] * 3).all()


def test_plan_is_deterministic_and_incremental(plan):
    shuffled = CLIPS.sample(frac=1, random_state=3)
    pd.testing.assert_frame_equal(plan_groups(shuffled, GOLD, CFG), plan.drop(columns="attempt"))
    other_seed = plan_groups(CLIPS, GOLD, CFG.model_copy(update={"seed": 1}))
    assert other_seed["group_id"].tolist() != [] and not other_seed["clip_id"].equals(plan["clip_id"])

    cfg = CFG.model_copy(update={"group_size": 40})
    first = plan_groups(CLIPS.iloc[:80], GOLD, cfg)
    assert first.groupby("group_id")["is_gold"].sum().tolist() == [2 * 3, 2 * 3]  # round(40 * 5/95) = 2
    new = plan_groups(CLIPS, GOLD, cfg, planned=first)
    assert set(new["clip_id"]) - set(GOLD["clip_id"]) == set(CLIPS["clip_id"].iloc[80:])
    assert not set(new["group_id"]) & set(first["group_id"])
    assert new.groupby("copy_index")["is_gold"].sum().min() == 1  # a group of 20 still gets a gold clip


def test_plan_needs_gold_unless_switched_off():
    with pytest.raises(ValueError, match="ferv annotate gold"):
        plan_groups(CLIPS, gold_frame({}), CFG)
    no_gold = plan_groups(CLIPS, gold_frame({}), CFG.model_copy(update={"gold_fraction": 0, "min_gold_per_group": 0}))
    assert len(no_gold) == 300 and not no_gold["is_gold"].any()


# -- votes and verdicts -----------------------------------------------------------------------------------


def test_current_votes_keeps_latest_version_and_drops_deleted_and_cancelled():
    rows = [
        vote("a", "ann1", "Happy", annotation_id=1, synced_s=0),
        vote("a", "ann1", "Sad", annotation_id=1, synced_s=10),  # edited: latest wins
        vote("b", "ann1", "Fear", annotation_id=2, synced_s=0),
        vote("b", "ann1", "Fear", annotation_id=2, synced_s=5, deleted=True),
        vote("c", "ann1", None, annotation_id=3, cancelled=True),
    ]
    cur = current_votes(frame(rows))
    assert cur[["annotation_id", "label"]].values.tolist() == [[1, "Sad"]]
    pd.testing.assert_frame_equal(current_votes(cur), cur)


def test_votes_are_keyed_by_server_project_and_annotation():
    """A re-created Label Studio (or another project) restarts annotation ids: same id, different vote."""
    rows = [vote("a", "ann1", "Happy", annotation_id=1), vote("b", "ann2", "Sad", annotation_id=1),
            vote("c", "ann3", "Fear", annotation_id=1), vote("c", "ann3", "Angry", annotation_id=1, synced_s=5)]
    rows[1].server = "http://new-server:8080"  # same project and id on another server
    rows[2].project_id = rows[3].project_id = 2  # same id in another project, edited later
    cur = current_votes(frame(rows))
    assert sorted(zip(cur["clip_id"], cur["label"])) == [("a", "Happy"), ("b", "Sad"), ("c", "Angry")]


@pytest.fixture(scope="module")
def three_copies(plan):
    group = plan["group_id"].iloc[0]
    rows = (label_copy(plan, group, 0, "good", good)
            + label_copy(plan, group, 1, "mediocre", mediocre)
            + label_copy(plan, group, 2, "random", random_on_gold(seed=7)))
    return group, frame(rows)


def test_random_copy_is_unacceptable_and_requeued_good_accepted_mediocre_improper(plan, three_copies):
    group, votes = three_copies
    verdicts = judge_copies(votes, GOLD, CFG, plan).set_index("annotator")
    rand = votes[(votes["annotator"] == "random") & votes["is_gold"]]
    expected_rate = (rand["label"] == rand["clip_id"].map(GOLD_TRUTH)).mean()
    assert expected_rate < 0.4  # ground truth of the random answers drawn with this seed
    assert verdicts.loc["random", "gold_rate"] == pytest.approx(expected_rate)
    assert verdicts["verdict"].to_dict() == {"good": ACCEPT, "mediocre": IMPROPER, "random": UNACCEPTABLE}
    assert verdicts.loc["mediocre", ["gold_answered", "gold_correct"]].tolist() == [5, 3]
    assert verdicts["n_votes"].tolist() == [105] * 3

    again = requeue(verdicts.reset_index())
    assert again.to_dict("records") == [{"group_id": group, "copy_index": 2, "rejected": "random"}]

    kept = counted_votes(current_votes(votes), verdicts.reset_index(), BUILD)
    kept = kept[~kept["clip_id"].isin(GOLD["clip_id"])]
    assert set(kept["annotator"]) == {"good", "mediocre"} and len(kept) == 200  # random discarded
    assert review_queue(plan, verdicts.reset_index()).empty  # copy 2 still owed


def test_redone_copy_leaves_the_queue_and_the_group_goes_to_review(plan, three_copies):
    group, votes = three_copies
    redo = frame(label_copy(plan, group, 2, "replacement", good, t0_s=1000))
    votes = pd.concat([votes, redo], ignore_index=True)
    verdicts = judge_copies(votes, GOLD, CFG, plan)
    assert requeue(verdicts).empty
    queue = review_queue(plan, verdicts, crowd_labels=_labels(votes, plan))
    assert len(queue) == 100 and set(queue["group_verdict"]) == {IMPROPER}  # worst kept copy: mediocre
    assert (queue["crowd_label"] == queue["clip_id"].map(TRUTH)).all()

    labels = _labels(votes, plan)
    assert len(labels) == 100 and (labels["label"] == labels["clip_id"].map(TRUTH)).all()
    assert set(labels["n_votes"]) == {3}  # good, mediocre, replacement: random's votes are gone


def test_a_slot_is_pushed_again_once_per_attempt_and_never_counts_its_rejected_annotator(plan, three_copies):
    group, votes = three_copies
    cur = current_votes(votes)
    assert requeue(judge_copies(cur, GOLD, CFG, plan), plan).to_dict("records") == [
        {"group_id": group, "copy_index": 2, "attempt": 1, "rejected": "random"}]
    redo = plan[plan["copy_index"] == 2].assign(attempt=1)
    plan2 = pd.concat([plan, redo], ignore_index=True)
    assert requeue(judge_copies(cur, GOLD, CFG, plan2), plan2).empty  # pushed, nobody started it yet

    # the rejected annotator takes the re-pushed copy and answers well: still not counted, pushed again
    again = pd.concat([votes, frame(label_copy(plan2, group, 2, "random", good, t0_s=500, attempt=1))])
    verdicts = judge_copies(current_votes(again), GOLD, CFG, plan2)
    assert verdicts.set_index(["annotator", "attempt"])["verdict"].to_dict() == {
        ("good", 0): ACCEPT, ("mediocre", 0): IMPROPER, ("random", 0): UNACCEPTABLE, ("random", 1): UNACCEPTABLE}
    assert requeue(verdicts, plan2)["attempt"].tolist() == [2]
    assert review_queue(plan2, verdicts).empty

    # another annotator does it: kept, nothing to push again, and the group goes to review
    done = pd.concat([votes, frame(label_copy(plan2, group, 2, "other", good, t0_s=900, attempt=1))])
    verdicts = judge_copies(current_votes(done), GOLD, CFG, plan2)
    assert verdicts.set_index(["annotator", "attempt"]).loc[("other", 1), "gold_planned"] == 5
    assert requeue(verdicts, plan2).empty and len(review_queue(plan2, verdicts)) == 100


def test_gold_rate_boundaries_and_pending(plan):
    group = plan["group_id"].iloc[0]

    def right_on(n):
        return lambda clip, is_gold, seen: _truth(clip) if not is_gold or seen < n else wrong(_truth(clip))

    rows = (label_copy(plan, group, 0, "four", right_on(4)) + label_copy(plan, group, 1, "two", right_on(2))
            + label_copy(plan, group, 2, "one", right_on(1)))
    votes = frame(rows)
    verdicts = judge_copies(votes, GOLD, CFG, plan).set_index("annotator")["verdict"].to_dict()
    assert verdicts == {"four": ACCEPT, "two": IMPROPER, "one": UNACCEPTABLE}  # 0.8, 0.4, 0.2

    half = frame(label_copy(plan, group, 0, "half", good)[:50])
    answered = half["is_gold"].sum()
    assert 0 < answered < 5
    judged = judge_copies(half, GOLD, CFG, plan)
    assert judged["verdict"].tolist() == [PENDING] and judged["gold_planned"].tolist() == [5]
    assert judge_copies(half, GOLD, CFG)["verdict"].tolist() == [ACCEPT]  # without the plan: answered gold only


# -- caps, majority, expert review ------------------------------------------------------------------------


def test_caps_keep_earliest_distinct_annotators_per_clip_of_a_group():
    rows = [vote("x", f"ann{i}", "Happy", group_id="g1", copy_index=i % 3, at_s=10 - i) for i in range(5)]
    rows += [vote("x", "ann4", "Happy", group_id="g1", copy_index=2, at_s=20),  # ann4 again, other copy
             vote("x", "ann9", "Happy", group_id="g2", copy_index=0, at_s=30),  # same clip, other group
             vote("x", "boss", "Sad", role="expert", at_s=40)]
    kept, extras = enforce_caps(frame(rows), 3)
    assert sorted(kept.loc[kept["group_id"] == "g1", "annotator"]) == ["ann2", "ann3", "ann4"]  # earliest
    assert set(kept["annotator"]) == {"ann2", "ann3", "ann4", "ann9", "boss"}
    assert sorted(zip(extras["annotator"], extras["reason"])) == [
        ("ann0", "over_cap"), ("ann1", "over_cap"), ("ann4", "repeat_annotator")]


def test_clips_without_a_clear_majority_get_more_annotators_up_to_the_cap():
    votes = frame([vote(c, f"a{i}", l) for c, ls in
                   {"p": ["Happy", "Happy", "Sad"], "q": ["Happy", "Sad", "Fear"], "r": ["Sad", "Sad", "Fear", "Fear"],
                    "s": ["Angry"] * 3, "t": ["Sad", "Fear"], "u": ["Sad", "Sad", "Fear", "Fear", "Happy"]}.items()
                   for i, l in enumerate(ls)])
    m = majority(votes, 0.5, 1).set_index("clip_id")
    assert m["status"].to_dict() == {"p": "accepted", "q": "ambiguous", "r": "ambiguous", "s": "accepted",
                                     "t": "ambiguous", "u": "ambiguous"}
    # t still owes its third copy; u has reached annotation.max_annotators_per_clip (5)
    assert unclear_clips(votes, BUILD)["clip_id"].tolist() == ["q", "r"]
    strict = BuildConfig(annotation=CFG, aggregate={"min_agreement": 0.7})
    assert unclear_clips(votes, strict)["clip_id"].tolist() == ["p", "q", "r"]
    assert unclear_clips(votes, BuildConfig(annotation={"max_annotators_per_clip": 3}))["clip_id"].tolist() == []
    decided = pd.concat([votes, frame([vote("q", "boss", "Fear", role="expert")])], ignore_index=True)
    assert unclear_clips(decided, BUILD)["clip_id"].tolist() == ["r"]  # an expert settled q


def test_expert_decision_is_final():
    votes = current_votes(frame([
        vote("a", "crowd1", "Happy"), vote("a", "crowd2", "Happy"), vote("a", "crowd3", "Happy"),
        vote("a", "exp1", "Neutral", role="expert", at_s=1),
        vote("a", "exp2", "Angry", role="expert", at_s=5),  # the latest decision on a clip wins
        vote("b", "exp1", "Sad", role="expert", at_s=1),
        vote("c", "exp1", "Happy", role="expert", at_s=1, deleted=True),  # withdrawn
        vote("c", "crowdie", "Fear", at_s=2), vote("c", "crowdie2", "Fear", at_s=2),
    ]))
    assert expert_decisions(votes)[["clip_id", "expert_label", "expert"]].values.tolist() == [
        ["a", "Angry", "exp2"], ["b", "Sad", "exp1"]]
    out = label_clips(votes, BUILD.aggregate, "majority").set_index("clip_id")
    assert out["label"].to_dict() == {"a": "Angry", "b": "Sad", "c": "Fear"}
    assert out["source"].to_dict() == {"a": "expert", "b": "expert", "c": "crowd"}
    assert out.loc["a", "crowd_label"] == "Happy"


def test_review_queue_skips_clips_an_expert_decided(plan):
    group = plan["group_id"].iloc[0]
    votes = frame(sum((label_copy(plan, group, c, f"ann{c}", good) for c in range(3)), []))
    verdicts = judge_copies(votes, GOLD, CFG, plan)
    decided = frame([vote("clip-000", "exp", "Sad", role="expert")])
    queue = review_queue(plan, verdicts, votes=decided)
    assert len(queue) == 99 and "clip-000" not in set(queue["clip_id"]) and set(queue["group_verdict"]) == {ACCEPT}


# -- gold -------------------------------------------------------------------------------------------------


def test_gold_table_is_validated_and_built_from_expert_votes_on_the_gold_project(tmp_path):
    from annotation.gold import gold_from_expert_votes, gold_labels, read_gold, write_gold

    with pytest.raises(ValueError, match="g-bad"):
        gold_labels(pd.DataFrame({"clip_id": ["g-ok", "g-bad"], "label": ["Happy", "Joy"]}))
    with pytest.raises(ValueError, match="conflicting"):
        gold_labels(pd.DataFrame({"clip_id": ["g1", "g1"], "label": ["Happy", "Sad"]}))

    tasks = pd.DataFrame({"task_id": [1, 2, 3], "project_role": ["gold", "gold", "review"]})
    votes = current_votes(frame([
        vote("g1", "exp1", "Happy", role="expert", task_id=1, at_s=1),
        vote("g1", "exp2", "Fear", role="expert", task_id=1, at_s=2),  # a later expert decision wins
        vote("g2", "crowdie", "Sad", task_id=2),  # a crowd vote is no gold
        vote("g2", "exp1", "PASS", role="expert", task_id=2),
        vote("c9", "exp1", "Angry", role="expert", task_id=3),  # a review decision is no gold
    ]))
    gold = gold_from_expert_votes(votes, tasks)
    assert gold[["clip_id", "label", "expert"]].values.tolist() == [["g1", "Fear", "exp2"], ["g2", "PASS", "exp1"]]
    assert gold["descriptor"].tolist() == ["Distress", "PASS"]
    write_gold(tmp_path, gold)
    pd.testing.assert_frame_equal(read_gold(tmp_path), gold)


def test_a_clip_without_a_clear_majority_gets_one_more_annotator_at_a_time_up_to_the_cap():
    from annotation.cycle import extra_intents
    from annotation.push import intent_rows

    cfg = BuildConfig(annotation={"gold_fraction": 0, "min_gold_per_group": 0, "max_annotators_per_clip": 5})
    clips = pd.DataFrame({"clip_id": ["p", "q"]})
    plan = intent_rows(plan_groups(clips, gold_frame({}), cfg.annotation), "copy")
    group = plan["group_id"].iloc[0]
    rows = [vote("p", f"a{i}", "Happy", group_id=group, copy_index=i) for i in range(3)]
    rows += [vote("q", f"a{i}", label, group_id=group, copy_index=i) for i, label in enumerate(["Happy", "Sad", "Fear"])]

    def extra(rows, plan):
        state = trust_state(frame(rows), plan.iloc[:0].assign(task_id=0), gold_frame({}), cfg, intents=plan)
        return extra_intents(state, plan, clips, cfg)

    first = extra(rows, plan)
    assert first[["clip_id", "project_role", "copy_index", "attempt"]].values.tolist() == [["q", "extra", 0, 0]]
    assert first["group_id"].iloc[0].startswith("ext3-")
    plan = pd.concat([plan, first], ignore_index=True)
    assert extra(rows, plan).empty  # asked once for its third annotator's tie

    rows.append(vote("q", "d", "Neutral", group_id=first["group_id"].iloc[0], copy_index=0))  # still a tie
    second = extra(rows, plan)
    assert second["clip_id"].tolist() == ["q"] and second["group_id"].iloc[0].startswith("ext4-")
    plan = pd.concat([plan, second], ignore_index=True)
    rows.append(vote("q", "e", "Surprise", group_id=second["group_id"].iloc[0], copy_index=0))
    assert extra(rows, plan).empty  # 5 annotators: the cap
