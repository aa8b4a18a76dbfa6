"""Gold clips: clips whose label experts have settled, used to judge crowd copies (``gold.parquet``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from schemas.manifests import read_manifest, write_manifest
from schemas.taxonomy import TAXONOMY


def gold_labels(gold: pd.DataFrame) -> pd.Series:
    """The gold table as a Series clip_id -> label, validated: known labels, one label per clip."""
    known = set(TAXONOMY.expression_names) | {TAXONOMY.pass_label}
    unknown = gold.loc[~gold["label"].isin(known), "clip_id"]
    if len(unknown):
        raise ValueError(f"gold clips {sorted(unknown)[:5]} have labels outside {sorted(known)}; fix gold.parquet")
    rows = gold[["clip_id", "label"]].drop_duplicates()
    clash = rows.loc[rows["clip_id"].duplicated(), "clip_id"]
    if len(clash):
        raise ValueError(f"gold clips {sorted(set(clash))[:5]} have conflicting labels; keep one per clip")
    return rows.set_index("clip_id")["label"].sort_index()


def gold_from_expert_votes(votes: pd.DataFrame, tasks: pd.DataFrame) -> pd.DataFrame:
    """Gold rows from expert votes on tasks of the gold project: per clip the latest expert decision.

    ``votes`` are current votes (see ``annotation.trust.current_votes``); a PASS decision is kept too.
    """
    gold_tasks = tasks.loc[tasks["project_role"] == "gold", "task_id"]
    expert = votes[(votes["role"] == "expert") & votes["task_id"].isin(gold_tasks) & votes["label"].notna()]
    latest = expert.sort_values(["updated_at", "annotation_id"], na_position="first", kind="stable")
    latest = latest.drop_duplicates("clip_id", keep="last")
    return (latest.rename(columns={"annotator": "expert"})[["clip_id", "label", "descriptor", "expert"]]
            .sort_values("clip_id").reset_index(drop=True))


def read_gold(workdir: str | Path) -> pd.DataFrame:
    """Read ``WORKDIR/gold.parquet`` (empty when absent) and validate its labels."""
    gold = read_manifest(workdir, "gold")
    gold_labels(gold)
    return gold


def write_gold(workdir: str | Path, gold: pd.DataFrame) -> Path:
    """Validate and write the gold table."""
    gold_labels(gold)
    return write_manifest(workdir, "gold", gold)


def plan_gold(workdir: str | Path, seed: int = 0, n: int = 0, clip_ids: list[str] | None = None) -> int:
    """Plan candidates for the experts' gold project: the chosen ``clip_ids``, or ``n`` clips picked
    deterministically (by ``seed``) among those no group, no gold intent and no gold row holds yet.
    Returns the intents added; ``annotation.push.push_plan`` imports them."""
    from annotation.push import REVIEW_COPY, add_intents, intent_rows
    from schemas.ids import stable_hash

    clips = read_manifest(workdir, "clips")
    plan = read_manifest(workdir, "plan")
    if clip_ids:
        unknown = sorted(set(clip_ids) - set(clips["clip_id"]))
        if unknown:
            raise ValueError(f"clips {unknown[:5]} are not in {Path(workdir) / 'clips.parquet'}")
        picked = list(dict.fromkeys(clip_ids))
    else:
        free = clips.loc[~clips["clip_id"].isin(plan["clip_id"]) & ~clips["clip_id"].isin(read_gold(workdir)["clip_id"]),
                         "clip_id"]
        picked = sorted(free, key=lambda c: stable_hash("gold", seed, c))[:n]
    rows = pd.DataFrame({"clip_id": picked, "group_id": "gold", "copy_index": REVIEW_COPY, "is_gold": False})
    rows["position"] = range(len(rows))
    return add_intents(Path(workdir), intent_rows(rows, "gold"))
