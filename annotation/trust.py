"""FERV39k's trusted labelling process as pure table operations.

Clips are cut into groups, each mixed with about 5% gold clips and given to N annotators as N copies in
shuffled order. Each copy is judged by its gold correct rate (Accept / Improper / Unacceptable);
Unacceptable copies lose their votes and go back to the queue. Kept groups go to expert review, where
the expert's decision is final. Label Studio does not enforce per-task caps, so the caps are applied here.

Typical use over ``votes.parquet`` rows (``VoteRecord`` columns)::

    votes = with_task_info(current_votes(raw), tasks)
    verdicts = judge_copies(votes, gold, cfg, plan)  # requeue(verdicts): copies to assign again
    kept = enforce_caps(accepted_votes(votes, verdicts, gold), cfg.annotators_per_clip).kept
    labels = apply_expert_review(majority_labels(kept), votes)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from annotation.gold import gold_labels
from schemas.config import AnnotationConfig
from schemas.ids import stable_hash

ACCEPT, IMPROPER, UNACCEPTABLE, PENDING = "Accept", "Improper", "Unacceptable", "Pending"
KEPT_VERDICTS = (ACCEPT, IMPROPER)
COPY_KEY = ["group_id", "copy_index", "annotator"]
PLAN_COLUMNS = ["group_id", "copy_index", "clip_id", "position", "is_gold"]
VERDICT_COLUMNS = [*COPY_KEY, "n_votes", "gold_planned", "gold_answered", "gold_correct", "gold_rate", "verdict"]


def current_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """The live state of append-only votes: latest version per annotation (by ``synced_at``, later rows
    winning ties), without deleted or cancelled annotations. Idempotent."""
    latest = votes.sort_values("synced_at", kind="stable").drop_duplicates("annotation_id", keep="last")
    live = latest[~(latest["deleted"].astype(bool) | latest["cancelled"].astype(bool))]
    return live.astype({"copy_index": "Int64"}).sort_values("annotation_id").reset_index(drop=True)


def with_task_info(votes: pd.DataFrame, tasks: pd.DataFrame) -> pd.DataFrame:
    """Fill each vote's missing group_id / copy_index and its is_gold flag from its task."""
    info = tasks.drop_duplicates("task_id").set_index("task_id")
    out = votes.copy()
    out["group_id"] = out["group_id"].fillna(out["task_id"].map(info["group_id"]))
    out["copy_index"] = out["copy_index"].fillna(out["task_id"].map(info["copy_index"])).astype("Int64")
    out["is_gold"] = out["is_gold"].astype(bool) | out["task_id"].map(info["is_gold"]).fillna(False).astype(bool)
    return out


def _crowd(votes: pd.DataFrame) -> pd.DataFrame:
    return votes[votes["role"] == "crowd"]


# -- planning ---------------------------------------------------------------------------------------------


def plan_groups(
    clips: pd.DataFrame, gold: pd.DataFrame, cfg: AnnotationConfig, planned: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Cut clips into groups of ``cfg.group_size``, mix about ``cfg.gold_fraction`` gold clips (at least
    ``cfg.min_gold_per_group``) into each, and give each group ``cfg.annotators_per_clip`` copies, each
    in its own shuffled order. Deterministic for ``cfg.seed``; clips in ``planned`` (an earlier plan) and
    gold clips are not planned again, so planning new clips leaves existing groups as they were.

    Returns one row per (group_id, copy_index, clip_id) with its ``position`` in that copy and ``is_gold``.
    """
    gold_ids = pd.Index(gold_labels(gold).index)
    done = planned["clip_id"] if planned is not None else []
    ids = pd.Index(clips["clip_id"].unique()).difference(gold_ids).difference(done).sort_values()
    if ids.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                             zip(PLAN_COLUMNS, ["str", "int64", "str", "int64", "bool"])})
    members = pd.DataFrame({"clip_id": ids, "group": np.arange(len(ids)) // cfg.group_size})
    group_ids = members.groupby("group")["clip_id"].agg(lambda s: "grp-" + stable_hash("group", list(s)))
    members["group_id"] = members["group"].map(group_ids)
    rng = np.random.default_rng([cfg.seed, int(stable_hash("plan", list(group_ids)), 16)])

    sizes = members.groupby("group").size().to_numpy()
    share = cfg.gold_fraction / (1 - cfg.gold_fraction)  # gold : regular, so gold is ~gold_fraction of the group
    n_gold = np.maximum(np.floor(sizes * share + 0.5).astype(int), cfg.min_gold_per_group)
    if n_gold.any() and gold_ids.empty:
        raise ValueError("no gold clips to mix into groups: write expert-labelled clips to gold.parquet first, "
                         "or set annotation.gold_fraction and annotation.min_gold_per_group to 0")
    n_gold = np.minimum(n_gold, len(gold_ids))
    picks = np.argsort(rng.random((len(sizes), len(gold_ids))), axis=1)
    group_idx, rank = np.nonzero(np.arange(len(gold_ids))[None, :] < n_gold[:, None])
    gold_rows = pd.DataFrame({"group": group_idx, "clip_id": gold_ids[picks[group_idx, rank]]})
    gold_rows["group_id"] = gold_rows["group"].map(group_ids)

    rows = pd.concat([members.assign(is_gold=False), gold_rows.assign(is_gold=True)], ignore_index=True)
    copies = pd.DataFrame({"copy_index": np.arange(cfg.annotators_per_clip, dtype="int64")})
    rows = rows.merge(copies, how="cross")
    rows["key"] = rng.random(len(rows))
    rows = rows.sort_values(["group", "copy_index", "key"], ignore_index=True)
    rows["position"] = rows.groupby(["group", "copy_index"]).cumcount().astype("int64")
    return rows[PLAN_COLUMNS]


# -- judging copies ---------------------------------------------------------------------------------------


def judge_copies(
    votes: pd.DataFrame, gold: pd.DataFrame, cfg: AnnotationConfig, plan: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One verdict per (group_id, copy_index, annotator) from the copy's gold correct rate:
    >= ``accept_gold_rate`` Accept, >= ``improper_gold_rate`` Improper, below Unacceptable. A copy is
    one annotator's work, as in FERV39k; a re-assigned copy gets its own row for its new annotator.

    A copy with no gold answered yet, or (given the ``plan``) with planned gold still unanswered, is
    Pending. With gold judging switched off (no gold fraction, no minimum) every copy is Accepted.
    """
    crowd = _crowd(current_votes(votes)).dropna(subset=["group_id", "copy_index"])
    truth = gold_labels(gold)
    correct = crowd["label"].eq(crowd["clip_id"].map(truth))
    crowd = crowd.assign(on_gold=crowd["clip_id"].isin(truth.index), correct=correct)
    out = crowd.groupby(COPY_KEY).agg(
        n_votes=("clip_id", "size"), gold_answered=("on_gold", "sum"), gold_correct=("correct", "sum")
    ).reset_index()
    if plan is not None:
        planned = plan[plan["is_gold"]].groupby(["group_id", "copy_index"]).size().rename("gold_planned")
        out = out.merge(planned.reset_index().astype({"copy_index": "Int64"}), how="left",
                        on=["group_id", "copy_index"])
        out["gold_planned"] = out["gold_planned"].fillna(0).astype("Int64")
    else:
        out["gold_planned"] = pd.Series(pd.NA, index=out.index, dtype="Int64")
    out["gold_rate"] = (out["gold_correct"] / out["gold_answered"]).where(out["gold_answered"] > 0)

    judging = cfg.gold_fraction > 0 or cfg.min_gold_per_group > 0
    unfinished = out["gold_rate"].isna() | (out["gold_answered"] < out["gold_planned"]).fillna(False)
    out["verdict"] = np.select(
        [~np.full(len(out), judging), unfinished, out["gold_rate"] >= cfg.accept_gold_rate,
         out["gold_rate"] >= cfg.improper_gold_rate],
        [ACCEPT, PENDING, ACCEPT, IMPROPER], default=UNACCEPTABLE,
    )
    return out[VERDICT_COLUMNS].sort_values(COPY_KEY, ignore_index=True)


def requeue(verdicts: pd.DataFrame) -> pd.DataFrame:
    """Group copies to assign again: judged Unacceptable and not yet redone (no other annotator's copy
    that is kept or still pending). ``rejected`` lists the annotators not to give it to again."""
    bad = verdicts["verdict"] == UNACCEPTABLE
    flags = verdicts.assign(bad=bad, alive=~bad).groupby(["group_id", "copy_index"])[["bad", "alive"]].any()
    todo = flags[flags["bad"] & ~flags["alive"]].index
    rejected = verdicts[bad].groupby(["group_id", "copy_index"])["annotator"].agg(lambda s: ",".join(sorted(s)))
    return rejected.loc[todo].rename("rejected").reset_index()


def accepted_votes(votes: pd.DataFrame, verdicts: pd.DataFrame, gold: pd.DataFrame | None = None) -> pd.DataFrame:
    """Current crowd votes on non-gold clips from copies judged Accept or Improper (with their verdict)."""
    crowd = _crowd(current_votes(votes))
    on_gold = crowd["is_gold"].astype(bool)
    if gold is not None:
        on_gold |= crowd["clip_id"].isin(gold["clip_id"])
    kept = verdicts.loc[verdicts["verdict"].isin(KEPT_VERDICTS), [*COPY_KEY, "verdict"]]
    return crowd[~on_gold].merge(kept.astype({"copy_index": "Int64"}), on=COPY_KEY).sort_values(
        "annotation_id", ignore_index=True)


class CapResult(NamedTuple):
    kept: pd.DataFrame
    extras: pd.DataFrame  # the dropped votes, with a ``reason``: over_cap | repeat_annotator


def enforce_caps(votes: pd.DataFrame, annotators_per_clip: int) -> CapResult:
    """Keep at most ``annotators_per_clip`` distinct crowd annotators per clip of a group (its copy set),
    earliest first, and one vote per annotator there; expert votes are never capped.

    Apply it after discarding Unacceptable copies, so that a re-queued copy's new annotator counts."""
    cur = current_votes(votes)
    crowd = cur[cur["role"] == "crowd"].assign(_group=lambda f: f["group_id"].fillna(""))
    crowd = crowd.sort_values(["created_at", "annotation_id"], na_position="last", kind="stable")
    repeat = crowd.duplicated(["_group", "clip_id", "annotator"])
    firsts = crowd[~repeat]
    over = firsts.groupby(["_group", "clip_id"]).cumcount() >= annotators_per_clip
    extras = pd.concat([firsts[over].assign(reason="over_cap"), crowd[repeat].assign(reason="repeat_annotator")])
    kept = pd.concat([cur[cur["role"] != "crowd"], firsts[~over]])
    return CapResult(kept.drop(columns="_group").sort_values("annotation_id", ignore_index=True),
                     extras.drop(columns="_group").sort_values("annotation_id", ignore_index=True))


# -- labels, review -------------------------------------------------------------------------------------


def majority_labels(votes: pd.DataFrame) -> pd.DataFrame:
    """Per clip: the most voted label (ties broken alphabetically, and flagged), its share of the votes
    with a label, and the vote count. Pass the votes to count, e.g. ``accepted_votes(...)``."""
    labelled = votes[votes["label"].notna()]
    counts = labelled.groupby(["clip_id", "label"]).size().rename("count").reset_index()
    counts = counts.sort_values(["clip_id", "count", "label"], ascending=[True, False, True], ignore_index=True)
    first = counts.groupby("clip_id").nth(0).set_index("clip_id")
    second = counts.groupby("clip_id").nth(1).set_index("clip_id")["count"]
    n_votes = counts.groupby("clip_id")["count"].sum()
    out = pd.DataFrame({
        "label": first["label"], "n_votes": n_votes.astype("int64"),
        "agreement": first["count"] / n_votes, "tie": second.reindex(first.index).eq(first["count"]),
    })
    return out.rename_axis("clip_id").reset_index()


def needs_more_annotators(votes: pd.DataFrame, min_agreement: float) -> pd.DataFrame:
    """Clips without a clear majority among ``votes`` (a tie, or a winning share below ``min_agreement``),
    to be given more annotators."""
    m = majority_labels(votes)
    return m[m["tie"] | (m["agreement"] < min_agreement)].reset_index(drop=True)


def expert_decisions(votes: pd.DataFrame) -> pd.DataFrame:
    """The latest current expert label per clip: clip_id, expert_label, expert."""
    experts = current_votes(votes)
    experts = experts[(experts["role"] == "expert") & experts["label"].notna()]
    experts = experts.sort_values(["updated_at", "annotation_id"], na_position="first", kind="stable")
    latest = experts.drop_duplicates("clip_id", keep="last")
    return latest.rename(columns={"label": "expert_label", "annotator": "expert"})[
        ["clip_id", "expert_label", "expert"]].reset_index(drop=True)


def review_queue(
    plan: pd.DataFrame, verdicts: pd.DataFrame, expert_votes: pd.DataFrame | None = None,
    crowd_labels: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Non-gold clips of groups whose every planned copy is kept (Accept or Improper), for expert review,
    leaving out clips an expert already decided. ``group_verdict`` is the group's worst kept verdict;
    with ``crowd_labels`` (clip_id, label) the crowd's label is shown as ``crowd_label``."""
    kept = verdicts[verdicts["verdict"].isin(KEPT_VERDICTS)]
    worst = (kept.assign(improper=kept["verdict"] == IMPROPER)
             .groupby(["group_id", "copy_index"])["improper"].any().reset_index())
    copies = plan[["group_id", "copy_index"]].drop_duplicates().astype({"copy_index": "Int64"})
    copies = copies.merge(worst.astype({"copy_index": "Int64"}), how="left", on=["group_id", "copy_index"])
    groups = copies.groupby("group_id")["improper"].agg(ready=lambda s: s.notna().all(), improper="max")
    ready = groups[groups["ready"]]
    group_verdict = pd.Series(np.where(ready["improper"].astype(bool), IMPROPER, ACCEPT), index=ready.index)
    clips = plan.loc[~plan["is_gold"] & plan["group_id"].isin(ready.index), ["group_id", "clip_id"]].drop_duplicates()
    clips["group_verdict"] = clips["group_id"].map(group_verdict)
    if expert_votes is not None:
        clips = clips[~clips["clip_id"].isin(expert_decisions(expert_votes)["clip_id"])]
    if crowd_labels is not None:
        clips = clips.merge(crowd_labels[["clip_id", "label"]].rename(columns={"label": "crowd_label"}),
                            how="left", on="clip_id")
    return clips.sort_values(["group_id", "clip_id"], ignore_index=True)


def apply_expert_review(crowd_labels: pd.DataFrame, expert_votes: pd.DataFrame) -> pd.DataFrame:
    """The crowd's labels with the experts' decisions applied: an expert's label is final.

    Adds ``crowd_label``, ``expert_label``, ``expert``, ``source`` (expert | crowd) and ``overridden``."""
    out = crowd_labels.rename(columns={"label": "crowd_label"}).merge(
        expert_decisions(expert_votes), how="left", on="clip_id")
    decided = out["expert_label"].notna()
    out["label"] = out["expert_label"].where(decided, out["crowd_label"])
    out["source"] = np.where(decided, "expert", "crowd")
    out["overridden"] = decided & out["expert_label"].ne(out["crowd_label"])
    return out


def trusted_labels(
    votes: pd.DataFrame, gold: pd.DataFrame, cfg: AnnotationConfig, plan: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The whole process over raw votes: judge copies, keep Accept/Improper votes within the caps, take
    the crowd majority, and apply the experts' decisions."""
    votes = current_votes(votes)
    verdicts = judge_copies(votes, gold, cfg, plan)
    kept = enforce_caps(accepted_votes(votes, verdicts, gold), cfg.annotators_per_clip).kept
    return apply_expert_review(majority_labels(kept), votes)
