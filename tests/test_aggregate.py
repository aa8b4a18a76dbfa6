"""Aggregation of votes with known truth and annotators of known reliability; agreement figures."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from annotation.agreement import agreement_summary, fleiss_kappa, krippendorff_alpha_nominal, rating_counts
from annotation.aggregate import aggregate, dawid_skene, label_clips, majority, read_agreement
from schemas.config import AggregateConfig, BuildConfig
from schemas.manifests import read_manifest, write_manifest
from schemas.records import VoteRecord
from schemas.taxonomy import TAXONOMY

E = TAXONOMY.expression_names  # Angry, Disgust, Fear, Happy, Neutral, Sad, Surprise
PASS = TAXONOMY.pass_label
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _votes(rows: list[tuple]) -> pd.DataFrame:
    """(clip_id, annotator, label[, role]) tuples -> a votes frame."""
    rows = [r if len(r) == 4 else (*r, "crowd") for r in rows]
    return pd.DataFrame(rows, columns=["clip_id", "annotator", "label", "role"])


def _crowd_with_bad_pair(n_clips: int = 600, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """3 annotators per clip out of 5: three good ones (95% right, random errors) and two bad ones who,
    on a seeded 40% of the clips, both give the same wrong label (the true one shifted by one). Wherever
    both bad annotators meet a good one on such a clip the majority is wrong; Dawid-Skene learns the bad
    pair's confusion from the clips where they are outvoted."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 7, n_clips)
    annotators = np.array(["good1", "good2", "good3", "bad1", "bad2"])
    picks = np.argsort(rng.random((n_clips, 5)), axis=1)[:, :3]
    clip = np.repeat(np.arange(n_clips), 3)
    who = picks.ravel()
    good_label = np.where(rng.random(len(who)) < 0.95, truth[clip], rng.integers(0, 7, len(who)))
    bad_wrong = (rng.random(n_clips) < 0.4)[clip]
    bad_label = np.where(bad_wrong, (truth[clip] + 1) % 7, truth[clip])
    label = np.where(who < 3, good_label, bad_label)
    ids = np.char.add("c", np.char.zfill(np.arange(n_clips).astype(str), 4))
    votes = pd.DataFrame({"clip_id": ids[clip], "annotator": annotators[who], "label": np.asarray(E)[label],
                          "role": "crowd"})
    return votes, pd.Series(np.asarray(E)[truth], index=ids)


def _accuracy(labels: pd.DataFrame, truth: pd.Series) -> float:
    return float((labels.set_index("clip_id")["label"].reindex(truth.index) == truth).mean())


# -- majority and Dawid-Skene --------------------------------------------------------------------------


def test_majority_labels_statuses_and_figures():
    votes = _votes([
        ("a", "w1", "Happy"), ("a", "w2", "Happy"), ("a", "w3", "Sad"),      # 2/3 Happy: accepted
        ("b", "w1", "Angry"), ("b", "w2", "Fear"),                           # 1-1 tie: ambiguous
        ("c", "w1", PASS), ("c", "w2", PASS), ("c", "w3", "Neutral"),        # PASS majority: unusable
        ("d", "w1", "Sad"), ("d", "w2", "Fear"), ("d", "w3", "Happy"), ("d", "w4", "Sad"),  # 2/4 Sad
        ("e", "w1", "Surprise"),                                              # one vote < min_votes
    ])
    out = majority(votes, min_agreement=0.5, min_votes=2).set_index("clip_id")
    assert out["status"].to_dict() == {"a": "accepted", "b": "ambiguous", "c": "unusable", "d": "accepted",
                                       "e": "ambiguous"}
    assert out.loc["a", "label"] == "Happy" and out.loc["a", "confidence"] == pytest.approx(2 / 3)
    assert out.loc["c", "label"] == PASS
    assert out.loc["d", "label"] == "Sad" and out.loc["d", "agreement"] == pytest.approx(0.5)
    assert out["label"].isna().to_dict() == {"a": False, "b": True, "c": False, "d": False, "e": True}
    assert out["n_votes"].to_dict() == {"a": 3, "b": 2, "c": 3, "d": 4, "e": 1}
    strict = majority(votes, min_agreement=0.6, min_votes=2).set_index("clip_id")
    assert strict.loc["d", "status"] == "ambiguous" and strict.loc["a", "status"] == "accepted"


def test_three_way_tie_is_ambiguous_whatever_the_label_order():
    votes = _votes([("t", "w1", "Surprise"), ("t", "w2", "Angry"), ("t", "w3", "Happy"),
                    ("u", "w1", "Sad"), ("u", "w2", "Sad"), ("u", "w3", "Disgust"), ("u", "w4", "Disgust")])
    for method in ("majority", "dawid_skene"):
        out = label_clips(votes, AggregateConfig(min_votes=2), method).set_index("clip_id")
        assert out["status"].tolist() == ["ambiguous", "ambiguous"], method
        assert out["label"].isna().all()


def test_reliable_annotators_give_the_truth_with_both_methods():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 7, 300)
    rows = [(f"c{c:03d}", f"w{w}", E[t] if rng.random() < 0.9 else E[(t + 3) % 7])
            for c, t in enumerate(truth) for w in rng.choice(20, 3, replace=False)]
    votes, expected = _votes(rows), pd.Series(np.asarray(E)[truth], index=[f"c{c:03d}" for c in range(300)])
    mv, ds = majority(votes, 0.5, 2), dawid_skene(votes)
    # with 90% accurate annotators, the majority is wrong only where two of three err the same way
    assert _accuracy(mv, expected) >= 0.95
    assert _accuracy(ds, expected) >= _accuracy(mv, expected)
    assert (ds["status"] == "accepted").all() and ds["confidence"].between(0.5, 1).all()


def test_dawid_skene_beats_majority_with_a_colluding_bad_pair():
    votes, truth = _crowd_with_bad_pair()
    acc_mv = _accuracy(majority(votes, 0.5, 2), truth)
    acc_ds = _accuracy(dawid_skene(votes), truth)
    # the bad pair meets on 3 of the 10 annotator triples and errs together on 40% of clips: MV ~ 87%
    assert acc_mv < 0.92
    assert acc_ds > 0.97
    assert acc_ds > acc_mv + 0.05


def test_dawid_skene_seeded_by_gold_keeps_gold_labels_and_learns_from_them():
    votes, truth = _crowd_with_bad_pair(n_clips=300, seed=1)
    gold = truth.iloc[:60]
    seeded = dawid_skene(votes, gold=gold).set_index("clip_id")
    assert (seeded.loc[gold.index, "label"] == gold).all()
    assert (seeded.loc[gold.index, "confidence"] == 1.0).all()
    rest = truth.iloc[60:]
    assert _accuracy(seeded.reset_index(), rest) > _accuracy(majority(votes, 0.5, 2), rest) + 0.05


def test_expert_decision_overrides_the_crowd_and_gold_wins_over_all():
    votes = _votes([
        ("x", "w1", "Happy"), ("x", "w2", "Happy"), ("x", "w3", "Happy"), ("x", "boss", "Sad", "expert"),
        ("y", "w1", "Angry"), ("y", "w2", "Fear"), ("y", "boss", "Fear", "expert"),  # tie, expert settles
        ("z", "w1", "Happy"), ("z", "w2", "Happy"), ("z", "boss", PASS, "expert"),   # expert drops it
        ("g", "w1", "Happy"), ("g", "w2", "Sad"), ("g", "w3", "Sad"),
        ("k", "boss", "Neutral", "expert"),                                          # expert only
    ])
    for method in ("majority", "dawid_skene"):
        out = label_clips(votes, AggregateConfig(), method, gold=pd.Series({"g": "Happy"})).set_index("clip_id")
        assert out.loc["x", ["label", "status", "source", "crowd_label"]].tolist() == [
            "Sad", "accepted", "expert", "Happy"]
        assert out.loc["x", "confidence"] == 1.0 and out.loc["x", "n_votes"] == 4
        assert out.loc["x", "agreement"] == pytest.approx(1 / 4)  # share of all votes for the released label
        assert out.loc["y", ["label", "status"]].tolist() == ["Fear", "accepted"]
        assert out.loc["z", ["label", "status"]].tolist() == [PASS, "unusable"]
        assert out.loc["g", ["label", "status", "source"]].tolist() == ["Happy", "gold", "gold"]
        assert out.loc["k", ["label", "status", "n_votes", "agreement"]].tolist() == ["Neutral", "accepted", 1, 1.0]
        assert (out["method"] == method).all()


# -- the work-directory stage -----------------------------------------------------------------------------


def _vote_record(i: int, clip: str, annotator: str, label: str | None, role: str = "crowd", *, copy: int = 0,
                 group: str = "grp-1", gold: bool = False, annotation_id: int | None = None,
                 synced: int = 0, deleted: bool = False) -> VoteRecord:
    return VoteRecord(clip_id=clip, task_id=1000 + i, project_id=1, annotation_id=annotation_id or i,
                      annotator=annotator, role=role, label=label, descriptor=None, lead_time_s=1.0,
                      created_at=T0 + timedelta(minutes=i), updated_at=T0 + timedelta(minutes=i), cancelled=False,
                      deleted=deleted, synced_at=T0 + timedelta(hours=synced), group_id=group,
                      copy_index=copy if role == "crowd" else None, is_gold=gold)


def test_aggregate_workdir_uses_current_votes_of_trusted_copies(tmp_path):
    copies = {"good1": 0, "good2": 1, "sloppy": 2}
    answers = {  # clip -> annotator -> label; gold clip G1/G2 is Happy/Sad
        "G1": {"good1": "Happy", "good2": "Happy", "sloppy": "Angry"},
        "G2": {"good1": "Sad", "good2": "Sad", "sloppy": "Fear"},
        "c1": {"good1": "Fear", "good2": "Fear", "sloppy": "Angry"},
        "c2": {"good1": "Neutral", "good2": "Surprise", "sloppy": "Neutral"},
        "c3": {"good1": PASS, "good2": PASS, "sloppy": "Happy"},
    }
    rows, i = [], 0
    for clip, by in answers.items():
        for annotator, label in by.items():
            i += 1
            rows.append(_vote_record(i, clip, annotator, label, copy=copies[annotator], gold=clip.startswith("G")))
    # c1: good2 first said Disgust, then changed to Fear (later sync wins); a deleted vote never counts
    rows.append(_vote_record(90, "c1", "good2", "Disgust", copy=1, annotation_id=11, synced=-1))
    rows.append(_vote_record(91, "c1", "good1", "Disgust", copy=0, deleted=True))
    write_manifest(tmp_path, "votes", rows)
    write_manifest(tmp_path, "gold", pd.DataFrame({"clip_id": ["G1", "G2"], "label": ["Happy", "Sad"],
                                                   "descriptor": None, "expert": "boss"}))
    cfg = BuildConfig()
    labels = aggregate(tmp_path, cfg).set_index("clip_id")
    # sloppy got 0/2 gold right: Unacceptable, so only good1+good2 count -> c2 is a 1-1 tie
    assert labels["status"].to_dict() == {"G1": "gold", "G2": "gold", "c1": "accepted", "c2": "ambiguous",
                                          "c3": "unusable"}
    assert labels.loc["c1", ["label", "n_votes", "agreement"]].tolist() == ["Fear", 2, 1.0]
    stored = read_manifest(tmp_path, "labels").set_index("clip_id")
    assert stored["label"].fillna("-").to_dict() == labels["label"].fillna("-").to_dict()
    assert stored["status"].to_dict() == labels["status"].to_dict()
    figures = read_agreement(tmp_path)
    assert figures["status"] == {"accepted": 1, "gold": 2, "ambiguous": 1, "unusable": 1}
    assert figures["votes_counted"] == 10 and figures["n_annotators"] == 2
    # untrusted: every current crowd vote counts, so sloppy's Neutral on c2 makes a 2/3 majority
    untrusted = BuildConfig(aggregate={"trusted_copies": False})
    again = aggregate(tmp_path, untrusted).set_index("clip_id")
    assert again.loc["c2", ["label", "status"]].tolist() == ["Neutral", "accepted"]
    ds = aggregate(tmp_path, cfg, method="dawid_skene")
    assert set(ds["method"]) == {"dawid_skene"} and len(ds) == 5


def test_votes_with_unknown_labels_are_recorded_as_failures_and_skipped(tmp_path):
    rows = [_vote_record(1, "a", "w1", "Happy", copy=0), _vote_record(2, "a", "w2", "Happy", copy=1),
            _vote_record(3, "a", "w3", "Contempt", copy=2)]
    write_manifest(tmp_path, "votes", rows)
    cfg = BuildConfig(aggregate={"trusted_copies": False})
    labels = aggregate(tmp_path, cfg)
    assert labels[["label", "n_votes", "agreement"]].values.tolist() == [["Happy", 2, 1.0]]
    failures = read_manifest(tmp_path, "failures")
    assert failures[["stage", "input_id", "error_kind"]].values.tolist() == [["aggregate", "3", "UnknownLabel"]]
    assert "'Contempt'" in failures["message"][0] and "clip a" in failures["message"][0]
    rows[2].label, rows[2].synced_at = "Sad", rows[2].synced_at + timedelta(hours=1)  # fixed and synced again
    write_manifest(tmp_path, "votes", rows)
    assert aggregate(tmp_path, cfg)["n_votes"].tolist() == [3]
    assert read_manifest(tmp_path, "failures").empty


def test_aggregate_without_votes_says_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="no votes"):
        aggregate(tmp_path, BuildConfig())


# -- agreement ----------------------------------------------------------------------------------------


# Fleiss (1971) example as on Wikipedia ("Fleiss' kappa", worked example): 10 items, 14 raters, 5 categories.
FLEISS_TABLE = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])


def test_fleiss_kappa_matches_the_worked_example():
    # P_i = (sum_j n_ij^2 - 14) / (14*13); P_bar = 3.8857/10 = 0.378; p_j = (20,28,39,21,32)/140
    # P_e = 0.143^2 + 0.200^2 + 0.279^2 + 0.150^2 + 0.229^2 = 0.213; kappa = (0.378-0.213)/(1-0.213) = 0.210
    p_item = ((FLEISS_TABLE ** 2).sum(axis=1) - 14) / (14 * 13)
    p_e = ((FLEISS_TABLE.sum(axis=0) / 140) ** 2).sum()
    assert p_item.mean() == pytest.approx(0.378, abs=5e-4) and p_e == pytest.approx(0.213, abs=5e-4)
    assert fleiss_kappa(FLEISS_TABLE) == pytest.approx((p_item.mean() - p_e) / (1 - p_e))
    assert fleiss_kappa(FLEISS_TABLE) == pytest.approx(0.210, abs=5e-4)


def test_agreement_summary_on_a_small_example_by_hand():
    # 3 clips x 2 annotators: clip p both Happy, clip q both Sad, clip r Happy vs Sad; clip s has one vote
    votes = _votes([("p", "A", "Happy"), ("p", "B", "Happy"), ("q", "A", "Sad"), ("q", "B", "Sad"),
                    ("r", "A", "Happy"), ("r", "B", "Sad"), ("s", "A", "Fear")])
    # Fleiss: P_i = 1, 1, 0 -> P_bar = 2/3; p = (3/6, 3/6) -> P_e = 1/2; kappa = (2/3 - 1/2)/(1/2) = 1/3
    # Krippendorff nominal: n = 6 pairable values; D_o = (coincidences off the diagonal) 2/6;
    # D_e = 2 * n_Happy * n_Sad / (n (n-1)) = 2*3*3/30 = 3/5; alpha = 1 - (1/3)/(3/5) = 4/9
    summary = agreement_summary(votes)
    assert summary["fleiss_kappa"] == pytest.approx(1 / 3)
    assert summary["krippendorff_alpha_nominal"] == pytest.approx(4 / 9)
    assert (summary["n_items"], summary["n_votes"], summary["n_annotators"]) == (3, 6, 2)


def test_alpha_from_counts_equals_alpha_from_the_annotator_by_item_matrix():
    import krippendorff

    votes, _ = _crowd_with_bad_pair(n_clips=200, seed=2)
    matrix = votes.assign(code=votes["label"].map({e: i for i, e in enumerate(E)})).pivot(
        index="annotator", columns="clip_id", values="code")
    direct = krippendorff.alpha(reliability_data=matrix.to_numpy(dtype=float), level_of_measurement="nominal")
    assert krippendorff_alpha_nominal(rating_counts(votes)) == pytest.approx(direct)
    assert krippendorff.alpha(reliability_data=matrix.to_numpy(dtype=float)) != pytest.approx(direct)  # interval


def test_cli_aggregate_prints_labels_and_agreement(tmp_path):
    import typer
    from typer.testing import CliRunner

    from cli.aggregate import register

    app = typer.Typer()
    register(app)
    rows = [_vote_record(i, clip, f"w{a}", label, copy=a) for i, (clip, a, label) in enumerate(
        [("a", 0, "Happy"), ("a", 1, "Happy"), ("b", 0, "Sad"), ("b", 1, "Angry")], start=1)]
    write_manifest(tmp_path, "votes", rows)
    config = tmp_path / "cfg.yaml"
    config.write_text("aggregate:\n  trusted_copies: false\n")
    done = CliRunner().invoke(app, ["aggregate", str(tmp_path), "--config", str(config), "--method", "majority"],
                              env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "Fleiss' kappa" in done.output and "agreement.json" in done.output
    # a: both Happy, b: Sad vs Angry. Fleiss: P_bar = 1/2, p = (1/2, 1/4, 1/4) -> P_e = 3/8, kappa = 1/5
    assert read_agreement(tmp_path)["fleiss_kappa"] == pytest.approx(0.2)
    assert read_manifest(tmp_path, "labels").set_index("clip_id")["status"].to_dict() == {
        "a": "accepted", "b": "ambiguous"}
    held = CliRunner().invoke(app, ["aggregate", str(tmp_path)], env={"COLUMNS": "200"})
    assert held.exit_code == 0 and "4 of 4 current votes not counted" in held.output  # no gold: copies pending
    missing = CliRunner().invoke(app, ["aggregate", str(tmp_path / "empty")])
    assert missing.exit_code == 1 and "has no votes" in missing.output
