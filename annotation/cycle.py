"""One turn of the trusted-labelling loop (``ferv annotate cycle``, and the scheduled ``annotation-cycle``
deployment): incremental sync -> copy verdicts -> Unacceptable copies pushed again for another annotator ->
groups whose copies are all kept pushed to expert review -> clips without a clear majority given one more
annotator (up to ``annotation.max_annotators_per_clip``) -> new clips planned into groups -> labels.

Idempotent and kill-safe: every task to push is first written as an intent to ``plan.parquet`` under a
deterministic key (derived from the group, slot, attempt and clip), and ``push_plan`` imports only the keys
Label Studio does not hold; votes are appended before the sync cursor moves. Killed anywhere and run again,
a cycle completes what the killed one intended and adds nothing twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from annotation.aggregate import unclear_clips, write_labels
from annotation.client import LSClient
from annotation.push import PushSummary, REVIEW_COPY, add_intents, intent_rows, plan_new_groups, push_plan
from annotation.sync import SyncSummary, sync_votes
from annotation.trust import CROWD_ROLES, TrustState, load_state, plan_groups, requeue, review_queue
from pipeline.progress import ProgressFn, no_progress
from schemas.config import BuildConfig
from schemas.manifests import read_manifest


@dataclass
class CycleSummary:
    sync: SyncSummary
    verdicts: dict[str, int]  # copies per verdict
    requeued: int  # slots pushed again for another annotator (intents added)
    review: int  # clips added to expert review
    extra: int  # clips given one more annotator
    new_clips: int  # intents added for clips never planned before
    push: PushSummary
    labels: int  # rows of labels.parquet (0: no votes yet)
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # per step


def redo_intents(plan: pd.DataFrame, again: pd.DataFrame) -> pd.DataFrame:
    """Intents re-pushing each slot of ``again`` (group_id, copy_index, attempt) in its first push's order."""
    first = plan[(plan["project_role"].isin(["copy", "extra"])) & (plan["attempt"] == 0)]
    rows = first.merge(again[["group_id", "copy_index", "attempt"]].rename(columns={"attempt": "next"}),
                       on=["group_id", "copy_index"])
    return intent_rows(rows, "redo", rows["next"].to_numpy())


def extra_intents(state: TrustState, plan: pd.DataFrame, clips: pd.DataFrame, cfg: BuildConfig) -> pd.DataFrame:
    """Intents giving each clip without a clear majority one more annotator: the clips that have ``n``
    counted annotators form groups ``ext<n>-<hash>`` with gold mixed in, one copy each; a clip that already
    has such an intent for its ``n`` gets none."""
    unclear = unclear_clips(state.counted, cfg, pd.Index(state.gold["clip_id"]))
    extra = plan[(plan["project_role"] == "extra") & ~plan["is_gold"]]
    asked = set(zip(extra["clip_id"], extra["group_id"].str.extract(r"^ext(\d+)-", expand=False).astype(int)))
    unclear = unclear[pd.Series([(c, n) not in asked for c, n in zip(unclear["clip_id"], unclear["n_votes"])],
                                index=unclear.index, dtype=bool)]
    one_copy = cfg.annotation.model_copy(update={"annotators_per_clip": 1})
    out = []
    for n, part in unclear.groupby("n_votes"):
        rows = plan_groups(clips[clips["clip_id"].isin(part["clip_id"])], state.gold, one_copy, prefix=f"ext{n}")
        out.append(intent_rows(rows, "extra"))
    return pd.concat(out, ignore_index=True) if out else intent_rows(plan.iloc[:0], "extra")


def run_cycle(workdir: str | Path, cfg: BuildConfig, client: LSClient, progress: ProgressFn = no_progress,
              local_root: str | Path | None = None, method: str | None = None) -> CycleSummary:
    """One turn of the loop (see the module doc); returns what it did."""
    workdir = Path(workdir)
    seconds: dict[str, float] = {}
    notes: list[str] = []
    t = time.perf_counter()
    synced = sync_votes(workdir, cfg, client, progress)
    seconds["sync"], t = time.perf_counter() - t, time.perf_counter()

    state = load_state(workdir, cfg)
    plan = read_manifest(workdir, "plan")
    crowd_plan = plan[plan["project_role"].isin(CROWD_ROLES)]
    clips = read_manifest(workdir, "clips")
    again = requeue(state.verdicts, crowd_plan) if len(state.verdicts) else pd.DataFrame()
    requeued = add_intents(workdir, redo_intents(plan, again)) if len(again) else 0
    review = 0
    if cfg.annotation.expert_review and len(crowd_plan):
        queue = review_queue(crowd_plan, state.verdicts, state.votes)
        queue = queue[~queue["clip_id"].isin(plan.loc[plan["project_role"] == "review", "clip_id"])]
        if len(queue):
            rows = pd.DataFrame({"clip_id": queue["clip_id"], "group_id": "review", "copy_index": REVIEW_COPY,
                                 "is_gold": False, "position": range(len(queue))})
            review = add_intents(workdir, intent_rows(rows, "review"))
    try:
        extra = add_intents(workdir, extra_intents(state, crowd_plan, clips, cfg))
        new_clips = plan_new_groups(workdir, cfg, clips)
    except ValueError as exc:  # no gold yet to mix into new groups
        extra, new_clips = 0, 0
        notes.append(str(exc))
    seconds["plan"], t = time.perf_counter() - t, time.perf_counter()

    pushed = push_plan(workdir, cfg, client, progress, local_root)
    seconds["push"], t = time.perf_counter() - t, time.perf_counter()
    labels = len(write_labels(workdir, state, cfg, method)) if len(state.votes) else 0
    seconds["labels"] = time.perf_counter() - t
    verdicts = state.verdicts["verdict"].value_counts().to_dict() if len(state.verdicts) else {}
    return CycleSummary(synced, {k: int(v) for k, v in verdicts.items()}, requeued, review, extra, new_clips, pushed,
                        labels, notes, seconds)
