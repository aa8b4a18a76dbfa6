"""Votes -> one label per clip (``labels.parquet``): majority vote or Dawid-Skene, expert review, gold.

Rules, in order of precedence:

- a gold clip gets status ``gold`` and its gold label (``gold.parquet``; without that file, the expert's
  decision on a clip whose votes are marked ``is_gold``);
- an expert's decision is final: the crowd's label is replaced, status ``accepted``;
- otherwise the crowd decides: a clear winner is ``accepted``, a clear PASS is ``unusable`` (the clip is
  dropped), a tie, too few votes or a winner below the threshold is ``ambiguous`` (label None: back to
  annotation).

A PASS from an expert or gold also makes a clip ``unusable``. ``n_votes`` counts the crowd and expert votes
on the clip, ``agreement`` is their share for the released label (for ambiguous clips: of the most voted
label), ``confidence`` is the method's belief in its label: the winning share (majority), the posterior
probability (Dawid-Skene), 1.0 for an expert decision or gold.

Dawid-Skene (``crowd-kit``) estimates a confusion matrix per annotator by EM, so reliable annotators
weigh more than unreliable ones. Seeding by gold: the crowd's votes on gold clips take part, and those
clips' label probabilities are fixed to their gold label in every EM step (crowd-kit's ``true_labels``),
so each annotator's confusion matrix is anchored by their answers on known clips. The EM starts from
the majority vote and is deterministic.

The core functions work on DataFrames of (current) votes with columns clip_id, annotator, label and
optionally role (crowd | expert), so they are tested without files. ``aggregate`` does the files: the
latest version of each live annotation (``annotation.trust.current_votes``), votes with an unknown label
recorded in ``failures.parquet`` and left out, crowd votes of copies judged Unacceptable (or still pending
their gold) left out when ``aggregate.trusted_copies``, the per-clip annotator cap applied.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from annotation.agreement import agreement_summary
from annotation.gold import gold_labels, read_gold
from pipeline.failures import failure_row
from annotation.trust import COPY_KEY, KEPT_VERDICTS, current_votes, enforce_caps, judge_copies, with_task_info
from schemas.config import AggregateConfig, BuildConfig
from schemas.manifests import append_manifest, manifest_lock, read_manifest, write_manifest
from schemas.taxonomy import TAXONOMY

ACCEPTED, AMBIGUOUS, UNUSABLE, GOLD = "accepted", "ambiguous", "unusable", "gold"
METHODS = ("majority", "dawid_skene")
LABEL_COLUMNS = ["clip_id", "label", "confidence", "n_votes", "agreement", "method", "status", "source",
                 "crowd_label"]
AGREEMENT_FILE = "agreement.json"
STAGE = "aggregate"
_TIE_TOLERANCE = 1e-9


def _crowd(votes: pd.DataFrame) -> pd.DataFrame:
    """Votes with a label that are not expert decisions."""
    crowd = votes[votes["label"].notna()]
    return crowd[crowd["role"] != "expert"] if "role" in crowd.columns else crowd


def _decide(frame: pd.DataFrame, clear: np.ndarray, method: str) -> pd.DataFrame:
    """Statuses from a method's winner per clip: unclear -> ambiguous (no label), PASS -> unusable."""
    label = frame["label"].where(clear)
    status = np.where(~clear, AMBIGUOUS, np.where(label == TAXONOMY.pass_label, UNUSABLE, ACCEPTED))
    return frame.assign(label=label, method=method, status=status, source="crowd", crowd_label=label)


def majority(votes: pd.DataFrame, min_agreement: float = 0.5, min_votes: int = 1) -> pd.DataFrame:
    """Majority vote per clip over the crowd votes in ``votes``.

    A clip is clear when its winner is unique (no tie), holds at least ``min_agreement`` of its votes and
    the clip has at least ``min_votes`` votes; ``confidence`` and ``agreement`` are the winning share."""
    crowd = _crowd(votes)
    counts = crowd.groupby(["clip_id", "label"], sort=False).size().rename("count").reset_index()
    counts = counts.sort_values(["clip_id", "count", "label"], ascending=[True, False, True], ignore_index=True)
    first = ~counts["clip_id"].duplicated()
    n_votes = counts.groupby("clip_id", sort=False)["count"].transform("sum")
    runner_up = counts["count"].shift(-1).where(counts["clip_id"].shift(-1).eq(counts["clip_id"]), 0)
    top = counts[first].assign(n_votes=n_votes[first], runner_up=runner_up[first]).reset_index(drop=True)
    share = top["count"] / top["n_votes"]
    clear = ((top["runner_up"] < top["count"]) & (share >= min_agreement) & (top["n_votes"] >= min_votes)).to_numpy()
    out = top[["clip_id", "label"]].assign(confidence=share, n_votes=top["n_votes"].astype("int64"), agreement=share)
    return _decide(out, clear, "majority")[LABEL_COLUMNS]


def dawid_skene(
    votes: pd.DataFrame, gold: pd.Series | None = None, min_posterior: float = 0.5, min_votes: int = 1,
    max_iter: int = 100, tol: float = 1e-5,
) -> pd.DataFrame:
    """Dawid-Skene labels (crowd-kit) per clip over the crowd votes in ``votes``.

    ``gold`` (clip_id -> label) seeds the model: those clips are held at their gold label during EM.
    A clip is clear when its most probable label is unique (no tie in posterior), has a posterior of at
    least ``min_posterior`` and the clip has at least ``min_votes`` votes. ``confidence`` is the posterior,
    ``agreement`` the share of the clip's votes for the label."""
    from crowdkit.aggregation import DawidSkene  # heavy import (pulls transformers): only when used

    crowd = _crowd(votes)
    if crowd.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in LABEL_COLUMNS})
    # integer codes for tasks, workers and labels: crowd-kit's joins and group-bys run faster on them
    tasks, task_codes = pd.factorize(crowd["clip_id"])
    labels, label_codes = pd.factorize(crowd["label"], sort=True)
    data = pd.DataFrame({"task": tasks, "worker": pd.factorize(crowd["annotator"])[0], "label": labels})
    true_labels = None
    if gold is not None and len(gold):
        task = task_codes.get_indexer(gold.index)  # not isin: slow for many string values in pandas 3.1
        label = label_codes.get_indexer(gold.to_numpy())
        known = (task >= 0) & (label >= 0)
        if known.any():
            true_labels = pd.Series(label[known], index=task[known])
    with warnings.catch_warnings():  # crowd-kit 1.4 uses pandas keywords that pandas 3 deprecates
        warnings.filterwarnings("ignore", category=Warning, module=r"crowdkit\.")
        probas = DawidSkene(n_iter=max_iter, tol=tol).fit_predict_proba(data, true_labels=true_labels)
    probas = probas.reindex(range(len(task_codes)))
    p = probas.to_numpy()
    best = p.argmax(axis=1)
    top = p[np.arange(len(p)), best]
    second = np.partition(p, -2, axis=1)[:, -2] if p.shape[1] > 1 else np.zeros(len(p))
    code = probas.columns.to_numpy()[best]
    label = np.asarray(label_codes)[code]
    n_votes = np.bincount(tasks, minlength=len(task_codes))
    agreement = np.bincount(tasks, weights=labels == code[tasks], minlength=len(task_codes)) / n_votes
    out = pd.DataFrame({"clip_id": np.asarray(task_codes), "label": label, "confidence": top,
                        "n_votes": n_votes.astype("int64"), "agreement": agreement})
    clear = (top - second > _TIE_TOLERANCE) & (top >= min_posterior) & (n_votes >= min_votes)
    return _decide(out, clear, "dawid_skene")[LABEL_COLUMNS]


def expert_labels(votes: pd.DataFrame) -> pd.Series:
    """clip_id -> the latest expert decision (by ``updated_at`` then ``annotation_id`` where present)."""
    experts = votes[votes["label"].notna() & (votes["role"] == "expert")] if "role" in votes.columns else votes[:0]
    order = [c for c in ("updated_at", "annotation_id") if c in experts.columns]
    if order:
        experts = experts.sort_values(order, na_position="first", kind="stable")
    return experts.drop_duplicates("clip_id", keep="last").set_index("clip_id")["label"]


def gold_from_votes(votes: pd.DataFrame) -> pd.Series:
    """clip_id -> label for clips marked ``is_gold`` in ``votes``: the expert's decision on them."""
    if "is_gold" not in votes.columns:
        return pd.Series(dtype=object)
    return expert_labels(votes[votes["is_gold"].astype(bool)])


def _settled(labels: pd.Series, status: str, method: str) -> pd.DataFrame:
    """Rows for labels decided by an expert or by gold (``status`` gold or accepted); PASS -> unusable."""
    out = pd.DataFrame({"clip_id": labels.index, "label": labels.to_numpy()})
    out["status"] = np.where(out["label"] == TAXONOMY.pass_label, UNUSABLE, status)
    return out.assign(confidence=1.0, method=method, source="expert" if status == ACCEPTED else "gold")


def _vote_figures(labels: pd.DataFrame, votes: pd.DataFrame) -> pd.DataFrame:
    """``n_votes`` (crowd and expert) and ``agreement`` (their share for the label, or of the most voted
    label when there is none) per clip; 1.0 for a clip without votes."""
    rated = votes[votes["label"].notna()]
    counts = rated.groupby(["clip_id", "label"]).size().rename("count").reset_index()
    n = counts.groupby("clip_id")["count"].sum()
    top = counts.groupby("clip_id")["count"].max()
    hit = labels[["clip_id", "label"]].merge(counts, how="left", on=["clip_id", "label"])["count"].to_numpy()
    n_votes = labels["clip_id"].map(n).fillna(0).to_numpy(dtype=float)
    votes_for = np.where(labels["label"].isna(), labels["clip_id"].map(top).fillna(0).to_numpy(dtype=float),
                         np.nan_to_num(hit.astype(float)))
    agreement = np.divide(votes_for, n_votes, out=np.ones(len(labels)), where=n_votes > 0)
    return labels.assign(n_votes=n_votes.astype("int64"), agreement=agreement)


def label_clips(
    votes: pd.DataFrame, cfg: AggregateConfig, method: str | None = None, gold: pd.Series | None = None
) -> pd.DataFrame:
    """One label row per clip (``LabelRecord`` columns) from counted current ``votes``: crowd method,
    then experts' decisions, then gold (see the module doc). ``gold`` (clip_id -> label) defaults to
    the expert's decisions on clips marked ``is_gold``."""
    method = method or cfg.method
    if method not in METHODS:
        raise ValueError(f"unknown aggregation method {method!r}; expected one of {METHODS}")
    gold = gold_from_votes(votes) if gold is None or gold.empty else gold
    crowd = _crowd(votes)
    if method == "majority":
        labels = majority(crowd[~crowd["clip_id"].isin(gold.index)], cfg.min_agreement, cfg.min_votes)
    else:
        labels = dawid_skene(crowd, gold if cfg.seed_with_gold else None, cfg.min_posterior, cfg.min_votes,
                             cfg.max_iter)
        labels = labels[~labels["clip_id"].isin(gold.index)]
    experts = expert_labels(votes)
    experts = experts[~experts.index.isin(gold.index)]
    crowd_label = labels.set_index("clip_id")["crowd_label"]
    decided = _settled(experts, ACCEPTED, method)
    decided["crowd_label"] = decided["clip_id"].map(crowd_label)
    golden = _settled(gold, GOLD, method).assign(crowd_label=None)
    labels = labels[~labels["clip_id"].isin(experts.index)]
    frames = [f for f in (labels, decided, golden) if len(f)]
    out = pd.concat(frames, ignore_index=True) if frames else labels
    out = _vote_figures(out, votes).astype({"confidence": float})
    return out[LABEL_COLUMNS].sort_values("clip_id", ignore_index=True)


def counted_votes(votes: pd.DataFrame, gold: pd.Series, cfg: BuildConfig) -> pd.DataFrame:
    """The current votes that count: every expert vote; crowd votes from copies judged Accept or
    Improper by their gold rate (when ``aggregate.trusted_copies``), at most
    ``annotation.annotators_per_clip`` annotators per clip of a group (``annotation.trust``)."""
    crowd_all = votes[votes["role"] != "expert"]
    if cfg.aggregate.trusted_copies:
        gold_table = pd.DataFrame({"clip_id": gold.index, "label": gold.to_numpy()})
        verdicts = judge_copies(votes, gold_table, cfg.annotation)
        kept = verdicts.loc[verdicts["verdict"].isin(KEPT_VERDICTS), COPY_KEY].astype({"copy_index": "Int64"})
        crowd_all = crowd_all.merge(kept, on=COPY_KEY)
    counted = pd.concat([votes[votes["role"] == "expert"], crowd_all], ignore_index=True)
    return enforce_caps(counted, cfg.annotation.annotators_per_clip).kept


def _known_labels(workdir: Path, votes: pd.DataFrame) -> pd.DataFrame:
    """``votes`` without those whose label is neither an expression nor PASS, each recorded in
    ``failures.parquet`` (stage aggregate, input the annotation id); earlier such failures now fixed are
    forgotten."""
    known = votes["label"].isna() | votes["label"].isin([*TAXONOMY.expression_names, TAXONOMY.pass_label])
    bad = votes[~known]
    failures = [failure_row(STAGE, str(row.annotation_id), "UnknownLabel",
                              f"annotation {row.annotation_id} on clip {row.clip_id} by {row.annotator} has "
                                      f"label {row.label!r}, not an expression or {TAXONOMY.pass_label}; fix the "
                                      "labelling config or the vote in Label Studio and sync again")
                for row in bad.itertuples(index=False)]
    if failures:
        append_manifest(workdir, "failures", failures, key=["stage", "input_id"])
    with manifest_lock(workdir, "failures"):
        old = read_manifest(workdir, "failures")
        fixed = (old["stage"] == STAGE) & ~old["input_id"].isin(bad["annotation_id"].astype(str))
        if fixed.any():
            write_manifest(workdir, "failures", old[~fixed])
    return votes[known]


def aggregate(workdir: str | Path, cfg: BuildConfig, method: str | None = None) -> pd.DataFrame:
    """Aggregate ``WORKDIR/votes.parquet`` into ``labels.parquet`` and write ``agreement.json`` (agreement
    of the counted crowd votes, vote counts, labels per status). Re-running gives the same files."""
    workdir = Path(workdir)
    raw = read_manifest(workdir, "votes")
    if raw.empty:
        raise ValueError(f"{workdir / 'votes.parquet'} has no votes; sync annotations first (ferv annotate sync)")
    votes = _known_labels(workdir, current_votes(raw))
    tasks = read_manifest(workdir, "tasks")
    if not tasks.empty:
        votes = with_task_info(votes, tasks)
    gold_table = read_gold(workdir)
    gold = gold_labels(gold_table) if len(gold_table) else gold_from_votes(votes)
    counted = counted_votes(votes, gold, cfg)
    labels = label_clips(counted, cfg.aggregate, method, gold)
    write_manifest(workdir, "labels", labels)
    summary = {
        "method": method or cfg.aggregate.method,
        **agreement_summary(_crowd(counted)),
        "votes_current": int(len(votes)),
        "votes_counted": int(len(counted)),
        "clips": int(len(labels)),
        "status": {s: int((labels["status"] == s).sum()) for s in (ACCEPTED, GOLD, AMBIGUOUS, UNUSABLE)},
    }
    summary = {k: None if isinstance(v, float) and np.isnan(v) else v for k, v in summary.items()}
    text = json.dumps(summary, indent=2, sort_keys=True) + "\n"
    tmp = workdir / f".{AGREEMENT_FILE}.tmp"
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(workdir / AGREEMENT_FILE)
    return labels


def read_agreement(workdir: str | Path) -> dict:
    """The figures ``aggregate`` wrote to ``WORKDIR/agreement.json``."""
    return json.loads((Path(workdir) / AGREEMENT_FILE).read_text(encoding="utf-8"))
