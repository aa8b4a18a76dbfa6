"""Builders for vote and gold tables with known ground truth (tests of the trusted labelling process)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import count
from typing import Callable

import pandas as pd

from schemas.manifests import to_table
from schemas.records import VoteRecord
from schemas.taxonomy import TAXONOMY

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
LABELS = [*TAXONOMY.expression_names, TAXONOMY.pass_label]
_ids = count(1)


def vote(clip_id: str, annotator: str, label: str | None, *, role: str = "crowd", group_id: str | None = None,
         copy_index: int | None = None, is_gold: bool = False, at_s: float = 0.0, lead_time_s: float = 5.0,
         annotation_id: int | None = None, synced_s: float = 0.0, deleted: bool = False, cancelled: bool = False,
         task_id: int = 0, scene: str | None = None, attempt: int = 0) -> VoteRecord:
    """One vote version; ``at_s`` is its creation time in seconds after T0."""
    descriptor = next((e.descriptors[0] for e in TAXONOMY.expressions if e.name == label), label)
    return VoteRecord(
        clip_id=clip_id, task_id=task_id, project_id=1,
        annotation_id=next(_ids) if annotation_id is None else annotation_id, annotator=annotator, role=role,
        label=label, descriptor=descriptor, lead_time_s=lead_time_s, created_at=T0 + timedelta(seconds=at_s),
        updated_at=T0 + timedelta(seconds=at_s), cancelled=cancelled, deleted=deleted,
        synced_at=T0 + timedelta(seconds=synced_s), group_id=group_id, copy_index=copy_index, is_gold=is_gold,
        attempt=attempt,
    )


def frame(rows: list[VoteRecord]) -> pd.DataFrame:
    """Votes as ``votes.parquet`` reads them back."""
    return to_table("votes", rows).to_pandas()


def wrong(label: str) -> str:
    """A label that is not ``label``."""
    return LABELS[(LABELS.index(label) + 1) % len(LABELS)]


def label_copy(plan: pd.DataFrame, group_id: str, copy_index: int, annotator: str,
               answer: Callable[[str, bool, int], str], t0_s: float = 0.0, attempt: int = 0) -> list[VoteRecord]:
    """Votes of one annotator working through one push (``attempt``) of a group copy in its shuffled order;
    ``answer(clip_id, is_gold, gold_seen_before)`` gives the label."""
    rows = plan[(plan["group_id"] == group_id) & (plan["copy_index"] == copy_index)
                & (plan["attempt"] == attempt if "attempt" in plan else True)].sort_values("position")
    out, gold_seen = [], 0
    for i, (clip, is_gold) in enumerate(zip(rows["clip_id"], rows["is_gold"])):
        out.append(vote(clip, annotator, answer(clip, bool(is_gold), gold_seen), group_id=group_id,
                        copy_index=copy_index, is_gold=bool(is_gold), at_s=t0_s + i, lead_time_s=2.0 + i % 3,
                        attempt=attempt))
        gold_seen += bool(is_gold)
    return out
