"""Aggregation speed on synthetic votes, measured in one run.

Votes: ``--votes`` (default 1,000,000) = clips x 3 annotators drawn from a pool of 300 with accuracies
between 50% and 95%, 8 labels (7 expressions and PASS), groups of 100 clips with 5 gold clips each.
Prints seconds and votes per second for the majority vote, Dawid-Skene (crowd-kit), the agreement
figures, and the whole ``aggregate`` stage on a work directory (read votes.parquet, current votes, gold
judging of copies, caps, labels, agreement, write), with Dawid-Skene's time as a ratio of majority's and
the accuracy of both against the synthetic truth.

    .venv/bin/python -m bench.aggregate [--votes 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from annotation.agreement import agreement_summary
from annotation.aggregate import aggregate, dawid_skene, majority
from schemas.config import BuildConfig
from schemas.manifests import write_manifest
from schemas.taxonomy import TAXONOMY

LABELS = np.asarray([*TAXONOMY.expression_names, TAXONOMY.pass_label])
PER_CLIP, POOL, GROUP, GOLD_PER_GROUP = 3, 300, 100, 5


def synthetic_votes(n_votes: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """``VoteRecord`` rows (one version each) and the truth per clip, vectorised."""
    rng = np.random.default_rng(seed)
    n_clips = n_votes // PER_CLIP
    truth = rng.integers(0, len(LABELS), n_clips)
    n_gold = GOLD_PER_GROUP * (n_clips // GROUP + 1)
    is_gold_clip = np.arange(n_clips) < n_gold
    group = np.where(is_gold_clip, np.arange(n_clips) % (n_clips // GROUP + 1), np.arange(n_clips) // GROUP)
    accuracy = rng.uniform(0.5, 0.95, POOL)
    # each group's copy k goes to one annotator of the pool; 3 different annotators per group
    copy_annotator = np.argsort(rng.random((group.max() + 1, POOL)), axis=1)[:, :PER_CLIP]
    clip = np.repeat(np.arange(n_clips), PER_CLIP)
    copy = np.tile(np.arange(PER_CLIP), n_clips)
    who = copy_annotator[group[clip], copy]
    right = rng.random(len(clip)) < accuracy[who]
    label = np.where(right, truth[clip], rng.integers(0, len(LABELS), len(clip)))
    clip_ids = np.char.add("clip-", np.char.zfill(np.arange(n_clips).astype(str), 7))
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    votes = pd.DataFrame({
        "clip_id": clip_ids[clip], "task_id": np.arange(len(clip)), "project_id": 1,
        "annotation_id": np.arange(len(clip)), "annotator": np.char.add("ann", who.astype(str)), "role": "crowd",
        "label": LABELS[label], "descriptor": None, "lead_time_s": 3.0, "created_at": t0, "updated_at": t0,
        "cancelled": False, "deleted": False, "synced_at": t0 + timedelta(hours=1),
        "group_id": np.char.add("grp-", group[clip].astype(str)), "copy_index": copy, "is_gold": is_gold_clip[clip],
    })
    return votes, pd.Series(LABELS[truth], index=clip_ids)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _accuracy(labels: pd.DataFrame, truth: pd.Series) -> float:
    return float((labels.set_index("clip_id")["label"].reindex(truth.index) == truth).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--votes", type=int, default=1_000_000)
    args = parser.parse_args()
    votes, truth = synthetic_votes(args.votes)
    n = len(votes)
    import crowdkit.aggregation  # noqa: F401  (its import, ~5 s with transformers, is not aggregation time)

    mv, t_mv = _timed(lambda: majority(votes, 0.5, 2))
    ds, t_ds = _timed(lambda: dawid_skene(votes))
    figures, t_agree = _timed(lambda: agreement_summary(votes))
    print(f"{n:,} votes on {len(truth):,} clips from {POOL} annotators")
    print(f"majority vote:       {t_mv:6.2f} s  {n / t_mv:12,.0f} votes/s  accuracy {_accuracy(mv, truth):.3f}")
    print(f"Dawid-Skene:         {t_ds:6.2f} s  {n / t_ds:12,.0f} votes/s  accuracy {_accuracy(ds, truth):.3f}"
          f"  ({t_ds / t_mv:.1f}x majority)")
    print(f"agreement (kappa, alpha): {t_agree:6.2f} s  kappa {figures['fleiss_kappa']:.3f} "
          f"alpha {figures['krippendorff_alpha_nominal']:.3f}")
    with tempfile.TemporaryDirectory() as tmp:
        write_manifest(tmp, "votes", votes)
        gold = truth[votes.drop_duplicates("clip_id").set_index("clip_id")["is_gold"]]
        write_manifest(tmp, "gold", pd.DataFrame({"clip_id": gold.index, "label": gold.to_numpy()}).assign(
            descriptor=None, expert="bench"))
        cfg = BuildConfig()
        for method in ("majority", "dawid_skene"):
            labels, t_stage = _timed(lambda: aggregate(tmp, cfg, method))
            counts = labels["status"].value_counts().to_dict()
            print(f"aggregate stage ({method}): {t_stage:6.2f} s  {n / t_stage:12,.0f} votes/s  {counts}")


if __name__ == "__main__":
    main()
