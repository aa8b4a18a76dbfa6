"""Inter-annotator agreement of a whole build: Fleiss' kappa and Krippendorff's alpha (nominal).

Both work from one table: a count per (clip, label) of the annotators who gave that label (PASS is a
category like any expression). Each annotator counts once per clip (their latest vote).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def rating_counts(votes: pd.DataFrame) -> pd.DataFrame:
    """Items x categories counts of ``votes`` (clip_id, annotator, label): one vote per annotator and clip
    (the last row wins), votes without a label left out."""
    rated = votes[votes["label"].notna()].drop_duplicates(["clip_id", "annotator"], keep="last")
    items, item_names = pd.factorize(rated["clip_id"], sort=True)
    labels, label_names = pd.factorize(rated["label"], sort=True)
    flat = np.bincount(items * len(label_names) + labels, minlength=len(item_names) * len(label_names))
    return pd.DataFrame(flat.reshape(len(item_names), len(label_names)),
                        index=pd.Index(item_names, name="clip_id"), columns=pd.Index(label_names, name="label"))


def fleiss_kappa(counts: np.ndarray | pd.DataFrame) -> float:
    """Fleiss' kappa of an items x categories count table.

    Items rated fewer than twice are left out; items may have different numbers of ratings (each item's
    agreement is over its own rater pairs), which equals Fleiss (1971) when every item has the same number.
    """
    table = np.asarray(counts, dtype=float)
    n_i = table.sum(axis=1)
    table, n_i = table[n_i >= 2], n_i[n_i >= 2]
    if not len(table):
        return float("nan")
    p_item = ((table ** 2).sum(axis=1) - n_i) / (n_i * (n_i - 1))
    p_cat = table.sum(axis=0) / n_i.sum()
    expected = float((p_cat ** 2).sum())
    if expected == 1.0:
        return float("nan")  # one category only: agreement is undefined
    return float((p_item.mean() - expected) / (1 - expected))


def krippendorff_alpha_nominal(counts: np.ndarray | pd.DataFrame) -> float:
    """Krippendorff's alpha, nominal level, of an items x categories count table (``krippendorff``
    package). The count table holds the same information as the annotators x items matrix of label codes
    (``reliability_data``) with far less memory for thousands of annotators."""
    import krippendorff

    table = np.asarray(counts, dtype=float)
    table = table[table.sum(axis=1) >= 2]
    if not len(table) or (table.sum(axis=0) > 0).sum() < 2:
        return float("nan")
    return float(krippendorff.alpha(value_counts=table, level_of_measurement="nominal"))


def agreement_summary(votes: pd.DataFrame) -> dict:
    """Agreement of ``votes`` (clip_id, annotator, label; crowd votes): fleiss_kappa and
    krippendorff_alpha_nominal over the n_items clips with at least two votes (n_votes votes), and
    n_annotators, who gave any of ``votes``."""
    counts = rating_counts(votes)
    counts = counts[counts.sum(axis=1) >= 2]
    return {
        "fleiss_kappa": fleiss_kappa(counts),
        "krippendorff_alpha_nominal": krippendorff_alpha_nominal(counts),
        "n_items": int(len(counts)),
        "n_votes": int(counts.to_numpy().sum()),
        "n_annotators": int(votes.loc[votes["label"].notna(), "annotator"].nunique()),
    }
