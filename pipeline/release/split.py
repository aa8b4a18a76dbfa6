"""Deterministic train/test split: about ``test_fraction`` of every scene x expression cell goes to test,
whole source videos at a time (no source in both splits).

Algorithm (grouped, stratified, greedy):
1. Each source is a group with a count vector over the cells (scene, expression) its clips fall in.
2. Sources are visited in the order of ``stable_hash(seed, source_id)`` (a seeded shuffle that does not
   depend on row order or on the other sources).
3. A visited source goes to test when that lowers the chi-square-like gap
   ``sum_c (test_c - f * n_c)^2 / n_c`` over the cells it touches (``n_c`` clips in cell ``c``,
   ``f`` = test fraction, ``test_c`` clips of cell ``c`` already in test); otherwise it goes to train.
   Dividing by ``n_c`` weighs each cell by its share error, so small cells count as much as large ones.
4. Up to ``passes`` more sweeps in the same order move a source to the other split wherever that lowers
   the gap further; the sweeps stop as soon as one changes nothing.
The result depends only on the clips' (source, scene, expression) and the seed. A cell fed by one source
cannot be split and usually lands wholly in train (a single-source scene has an empty test list).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from schemas.ids import stable_hash


def assign_split(clips: pd.DataFrame, test_fraction: float, seed: int, passes: int = 3) -> pd.Series:
    """Return ``"train"``/``"test"`` for each row of ``clips`` (columns source_id, scene, expression)."""
    if clips.empty:
        return pd.Series([], index=clips.index, dtype=object)
    cell = clips["scene"].astype(str) + "/" + clips["expression"].astype(str)
    counts = pd.crosstab(clips["source_id"].astype(str), cell)  # sources x cells
    totals = counts.sum(axis=0).to_numpy(dtype=float)
    target = test_fraction * totals
    order = sorted(counts.index, key=lambda s: (stable_hash("release-split", seed, s), s))
    matrix = counts.loc[order].to_numpy(dtype=float)
    in_test = np.zeros(len(totals))
    test = np.zeros(len(order), dtype=bool)

    def gain(i: int, sign: float) -> float:
        touched = matrix[i] > 0
        now, moved = in_test[touched], in_test[touched] + sign * matrix[i][touched]
        return float((((now - target[touched]) ** 2 - (moved - target[touched]) ** 2) / totals[touched]).sum())

    for sweep in range(1 + passes):
        changed = False
        for i in range(len(order)):
            if sweep and test[i]:
                sign = -1.0
            elif not test[i]:
                sign = 1.0
            else:
                continue
            if gain(i, sign) > 1e-12:
                in_test += sign * matrix[i]
                test[i], changed = not test[i], True
        if not changed:
            break
    test_sources = {s for s, t in zip(order, test) if t}
    return clips["source_id"].astype(str).map(lambda s: "test" if s in test_sources else "train")
