"""FERV39k's trusted labelling process as pure table operations (the labels themselves: ``aggregate``).

Clips are cut into groups, each mixed with about 5% gold clips and given to N annotators as N copies in
shuffled order (``plan_groups``). Each copy is judged by its gold correct rate (``judge_copies``: Accept /
Improper / Unacceptable, Pending while planned gold is unanswered); an Unacceptable copy loses its votes and
is pushed again for another annotator (``requeue``). Groups whose every copy is kept go to expert review
(``review_queue``), where the expert's decision is final. Label Studio does not enforce per-task caps, so
the caps are applied here (``enforce_caps``).

``load_state`` is the one boundary: it reads the manifests, computes the current votes once and derives
the verdicts and the counted votes from them; ``aggregate``, the QC report and the annotation cycle all
read that same state, so they cannot disagree on a copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from annotation.gold import gold_labels, read_gold
from schemas.config import AnnotationConfig, BuildConfig
from schemas.ids import stable_hash
from schemas.manifests import read_manifest
from schemas.taxonomy import TAXONOMY
from schemas.votes import VOTE_KEY, current_votes

ACCEPT, IMPROPER, UNACCEPTABLE, PENDING = "Accept", "Improper", "Unacceptable", "Pending"
KEPT_VERDICTS = (ACCEPT, IMPROPER)
CROWD_ROLES = ("copy", "redo", "extra")  # project roles whose votes are crowd votes; review and gold: experts
SLOT = ["group_id", "copy_index"]  # one of a group's N copies, whoever does it
COPY_KEY = ["group_id", "copy_index", "attempt", "annotator"]  # one annotator's work on one push of a slot
PLAN_COLUMNS = ["group_id", "copy_index", "clip_id", "position", "is_gold"]
VERDICT_COLUMNS = [*COPY_KEY, "n_votes", "gold_planned", "gold_answered", "gold_correct", "gold_rate", "verdict"]


def with_task_info(votes: pd.DataFrame, tasks: pd.DataFrame) -> pd.DataFrame:
    """Fill each vote's missing group_id / copy_index and its is_gold flag from its task."""
    info = tasks.drop_duplicates("task_id").set_index("task_id")
    out = votes.copy()
    if len(info):
        out["group_id"] = out["group_id"].fillna(out["task_id"].map(info["group_id"]))
        out["copy_index"] = out["copy_index"].fillna(out["task_id"].map(info["copy_index"]))
    out["copy_index"] = out["copy_index"].astype("Int64")
    out["is_gold"] = out["is_gold"].astype(bool) | out["task_id"].map(info["is_gold"]).eq(True)
    return out


# -- planning ---------------------------------------------------------------------------------------------


def plan_groups(
    clips: pd.DataFrame, gold: pd.DataFrame, cfg: AnnotationConfig, planned: pd.DataFrame | None = None,
    prefix: str = "grp",
) -> pd.DataFrame:
    """Cut clips into groups of ``cfg.group_size``, mix about ``cfg.gold_fraction`` gold clips (at least
    ``cfg.min_gold_per_group``) into each, and give each group ``cfg.annotators_per_clip`` copies, each
    in its own shuffled order. Deterministic for ``cfg.seed``; clips in ``planned`` (an earlier plan) and
    gold clips are not planned again, so planning new clips leaves existing groups as they were. Group ids
    are ``<prefix>-<hash of its clips>``.

    Returns one row per (group_id, copy_index, clip_id) with its ``position`` in that copy and ``is_gold``.
    """
    gold_ids = pd.Index(gold_labels(gold).index)
    done = planned["clip_id"] if planned is not None else []
    ids = pd.Index(clips["clip_id"].unique()).difference(gold_ids).difference(done).sort_values()
    if ids.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in
                             zip(PLAN_COLUMNS, ["str", "int64", "str", "int64", "bool"])})
    members = pd.DataFrame({"clip_id": ids, "group": np.arange(len(ids)) // cfg.group_size})
    group_ids = members.groupby("group")["clip_id"].agg(lambda s: f"{prefix}-" + stable_hash("group", list(s)))
    members["group_id"] = members["group"].map(group_ids)
    rng = np.random.default_rng([cfg.seed, int(stable_hash("plan", list(group_ids)), 16)])

    sizes = members.groupby("group").size().to_numpy()
    share = cfg.gold_fraction / (1 - cfg.gold_fraction)  # gold : regular, so gold is ~gold_fraction of the group
    n_gold = np.maximum(np.floor(sizes * share + 0.5).astype(int), cfg.min_gold_per_group)
    if n_gold.any() and gold_ids.empty:
        raise ValueError("no gold clips to mix into groups: let experts settle some first (ferv annotate gold "
                         "WORKDIR --clips N, then sync), or set annotation.gold_fraction and "
                         "annotation.min_gold_per_group to 0")
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


def crowd_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """The crowd's votes (not the experts'); a frame without a ``role`` column is all crowd."""
    return votes[votes["role"] != "expert"] if "role" in votes.columns else votes


def judge_copies(
    votes: pd.DataFrame, gold: pd.DataFrame, cfg: AnnotationConfig, plan: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One verdict per ``COPY_KEY`` over current ``votes``, from the copy's gold correct rate:
    >= ``accept_gold_rate`` Accept, >= ``improper_gold_rate`` Improper, below Unacceptable. A copy is
    one annotator's work on one push of a group's slot, as in FERV39k.

    A copy with no gold answered yet, or (given the ``plan``: crowd tasks with group_id, copy_index,
    attempt, clip_id, is_gold) with planned gold still unanswered, is Pending. An annotator whose copy of a
    slot was Unacceptable gets no second chance on it: a later attempt of theirs is Unacceptable too. With
    gold judging switched off (no gold fraction, no minimum) every copy is Accepted.
    """
    crowd = crowd_votes(votes).dropna(subset=["group_id", "copy_index"])
    truth = gold_labels(gold)
    correct = crowd["label"].eq(crowd["clip_id"].map(truth))
    crowd = crowd.assign(on_gold=crowd["clip_id"].isin(truth.index), correct=correct)
    out = crowd.groupby(COPY_KEY).agg(
        n_votes=("clip_id", "size"), gold_answered=("on_gold", "sum"), gold_correct=("correct", "sum")
    ).reset_index().astype({"copy_index": "Int64", "attempt": "int64"})
    if plan is not None:
        pushes = ["group_id", "copy_index", "attempt"]
        planned = (plan[plan["is_gold"]].drop_duplicates([*pushes, "clip_id"]).groupby(pushes).size()
                   .rename("gold_planned").reset_index().astype({"copy_index": "Int64", "attempt": "int64"}))
        out = out.merge(planned, how="left", on=pushes)
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
    first_bad = (out[out["verdict"] == UNACCEPTABLE].groupby([*SLOT, "annotator"])["attempt"].min()
                 .rename("first_bad").reset_index())
    out = out.merge(first_bad, how="left", on=[*SLOT, "annotator"])
    out.loc[out["attempt"] > out["first_bad"].fillna(np.inf), "verdict"] = UNACCEPTABLE
    return out[VERDICT_COLUMNS].sort_values(COPY_KEY, ignore_index=True)


def requeue(verdicts: pd.DataFrame, plan: pd.DataFrame | None = None) -> pd.DataFrame:
    """Group slots to push again for another annotator: a copy was judged Unacceptable and no copy of the
    slot is kept or still pending. ``rejected`` lists the annotators not to count there again.

    With the ``plan`` (crowd tasks with an ``attempt``), a slot whose latest push nobody has started yet is
    left alone (it is already waiting for someone), and ``attempt`` is the number for its next push."""
    bad = verdicts["verdict"] == UNACCEPTABLE
    flags = verdicts.assign(bad=bad, alive=~bad).groupby(SLOT)[["bad", "alive"]].any()
    todo = flags[flags["bad"] & ~flags["alive"]].index
    rejected = verdicts[bad].groupby(SLOT)["annotator"].agg(lambda s: ",".join(sorted(set(s))))
    out = rejected.loc[todo].rename("rejected").reset_index()
    if plan is None:
        return out
    latest = plan.groupby(SLOT)["attempt"].max().rename("latest").reset_index().astype({"copy_index": "Int64"})
    started = verdicts.groupby(SLOT)["attempt"].max().rename("started").reset_index()
    out = out.astype({"copy_index": "Int64"}).merge(latest, on=SLOT).merge(started, on=SLOT)
    out = out[out["started"] >= out["latest"]]
    return (out.assign(attempt=out["latest"] + 1)[[*SLOT, "attempt", "rejected"]]
            .astype({"attempt": "int64"}).reset_index(drop=True))


class CapResult(NamedTuple):
    kept: pd.DataFrame
    extras: pd.DataFrame  # the dropped votes, with a ``reason``: over_cap | repeat_annotator


def enforce_caps(votes: pd.DataFrame, max_annotators: int) -> CapResult:
    """Keep at most ``max_annotators`` distinct crowd annotators per clip of a group, earliest first, and
    one vote per annotator there; expert votes are never capped.

    Apply it after discarding Unacceptable copies, so that a re-queued copy's new annotator counts."""
    crowd = crowd_votes(votes).assign(_group=lambda f: f["group_id"].fillna(""))
    crowd = crowd.sort_values(["created_at", "annotation_id"], na_position="last", kind="stable")
    repeat = crowd.duplicated(["_group", "clip_id", "annotator"])
    firsts = crowd[~repeat]
    over = firsts.groupby(["_group", "clip_id"]).cumcount() >= max_annotators
    extras = pd.concat([firsts[over].assign(reason="over_cap"), crowd[repeat].assign(reason="repeat_annotator")])
    kept = pd.concat([votes[votes["role"] == "expert"], firsts[~over]])
    return CapResult(kept.drop(columns="_group").sort_values(VOTE_KEY, ignore_index=True),
                     extras.drop(columns="_group").sort_values(VOTE_KEY, ignore_index=True))


def counted_votes(votes: pd.DataFrame, verdicts: pd.DataFrame, cfg: BuildConfig) -> pd.DataFrame:
    """The current votes that count for the labels: every expert vote; crowd votes from copies judged
    Accept or Improper (every copy when ``aggregate.trusted_copies`` is off), at most
    ``annotation.max_annotators_per_clip`` annotators per clip of a group. Votes on gold clips stay (they
    seed Dawid-Skene); the labels give gold clips their gold label."""
    crowd = crowd_votes(votes)
    if cfg.aggregate.trusted_copies:
        kept = verdicts.loc[verdicts["verdict"].isin(KEPT_VERDICTS), COPY_KEY]
        crowd = crowd.merge(kept.astype({"copy_index": "Int64", "attempt": "int64"}), on=COPY_KEY)
    counted = pd.concat([votes[votes["role"] == "expert"], crowd], ignore_index=True)
    return enforce_caps(counted, cfg.annotation.max_annotators_per_clip).kept


# -- expert review ------------------------------------------------------------------------------------------


def expert_decisions(votes: pd.DataFrame) -> pd.DataFrame:
    """The latest expert label per clip among current ``votes`` (by ``updated_at`` then ``annotation_id``
    where present): clip_id, expert_label, expert."""
    experts = votes[(votes["role"] == "expert") & votes["label"].notna()] if "role" in votes else votes[:0]
    order = [c for c in ("updated_at", "annotation_id") if c in experts.columns]
    if order:
        experts = experts.sort_values(order, na_position="first", kind="stable")
    latest = experts.drop_duplicates("clip_id", keep="last")
    return latest.rename(columns={"label": "expert_label", "annotator": "expert"})[
        ["clip_id", "expert_label", "expert"]].sort_values("clip_id", ignore_index=True)


def review_queue(
    plan: pd.DataFrame, verdicts: pd.DataFrame, votes: pd.DataFrame | None = None,
    crowd_labels: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Non-gold clips of groups whose every planned slot has a kept copy (Accept or Improper), for expert
    review, leaving out clips an expert already decided among ``votes``. ``group_verdict`` is the group's
    worst kept verdict; with ``crowd_labels`` (clip_id, label) the crowd's label is shown as ``crowd_label``."""
    kept = verdicts[verdicts["verdict"].isin(KEPT_VERDICTS)]
    worst = kept.assign(improper=kept["verdict"] == IMPROPER).groupby(SLOT)["improper"].any().reset_index()
    copies = plan[SLOT].drop_duplicates().astype({"copy_index": "Int64"})
    copies = copies.merge(worst.astype({"copy_index": "Int64"}), how="left", on=SLOT)
    groups = copies.groupby("group_id")["improper"].agg(ready=lambda s: s.notna().all(), improper="max")
    ready = groups[groups["ready"]]
    group_verdict = pd.Series(np.where(ready["improper"].astype(bool), IMPROPER, ACCEPT), index=ready.index)
    clips = plan.loc[~plan["is_gold"] & plan["group_id"].isin(ready.index), ["group_id", "clip_id"]].drop_duplicates()
    clips["group_verdict"] = clips["group_id"].map(group_verdict)
    if votes is not None:
        clips = clips[~clips["clip_id"].isin(expert_decisions(votes)["clip_id"])]
    if crowd_labels is not None:
        clips = clips.merge(crowd_labels[["clip_id", "label"]].rename(columns={"label": "crowd_label"}),
                            how="left", on="clip_id")
    return clips.sort_values(["group_id", "clip_id"], ignore_index=True)


# -- the state every reader shares ----------------------------------------------------------------------------


@dataclass
class TrustState:
    """The annotation process at one moment, derived once from the manifests."""

    votes: pd.DataFrame  # current votes with known labels, with their task's group, copy and gold flag
    unknown: pd.DataFrame  # current votes whose label is neither an expression nor PASS (not used)
    tasks: pd.DataFrame  # tasks.parquet
    plan: pd.DataFrame  # crowd intents or tasks (copy | redo | extra): the groups' planned copies
    gold: pd.DataFrame  # gold.parquet
    verdicts: pd.DataFrame  # one row per COPY_KEY (judge_copies)
    counted: pd.DataFrame  # the votes that make the labels (counted_votes)

    @property
    def gold_labels(self) -> pd.Series:
        return gold_labels(self.gold)


def trust_state(raw_votes: pd.DataFrame, tasks: pd.DataFrame, gold: pd.DataFrame, cfg: BuildConfig,
                intents: pd.DataFrame | None = None) -> TrustState:
    """Current votes (computed here, once), copy verdicts with the plan, and the counted votes. The plan is
    the crowd rows of ``intents`` (``plan.parquet``: complete even while a push is under way), else of
    ``tasks``."""
    votes = with_task_info(current_votes(raw_votes), tasks)
    known = votes["label"].isna() | votes["label"].isin([*TAXONOMY.expression_names, TAXONOMY.pass_label])
    votes, unknown = votes[known].reset_index(drop=True), votes[~known].reset_index(drop=True)
    plan = intents if intents is not None and len(intents) else tasks
    plan = plan[plan["project_role"].isin(CROWD_ROLES)]
    verdicts = judge_copies(votes, gold, cfg.annotation, plan if len(plan) else None)
    counted = counted_votes(votes, verdicts, cfg)
    return TrustState(votes, unknown, tasks, plan, gold, verdicts, counted)


def load_state(workdir: str | Path, cfg: BuildConfig) -> TrustState:
    """``trust_state`` of a work directory's votes, tasks and gold manifests."""
    return trust_state(read_manifest(workdir, "votes"), read_manifest(workdir, "tasks"), read_gold(workdir), cfg,
                       read_manifest(workdir, "plan"))
