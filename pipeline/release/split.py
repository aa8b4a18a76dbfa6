"""Deterministic train/test split: about ``test_fraction`` of every scene x expression cell goes to test,
whole source videos at a time (no source in both splits), and neither split is ever empty.

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
5. When that leaves a split empty, or a test share more than ``TOLERANCE`` from ``f`` (few sources, or cells
   fed by one source each, which cannot be split), the test sources are also chosen over the whole release
   (:func:`_whole_release`), and the better of the two choices is kept, by :func:`_rank`: test no larger
   than train, every expression of the release kept in train where possible, then the test share closest
   to ``f``. With up to ``EXACT_SOURCES`` sources every choice is tried; above that, a greedy pass.
The result depends only on the clips' (source, scene, expression) and the seed. One source cannot be split
(:class:`SplitError`).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from schemas.ids import stable_hash

EXACT_SOURCES = 14  # up to this many sources, the whole-release fallback tries every choice of test sources
TOLERANCE = 0.05  # a stratified split whose test share is further than this from the target is compared


class SplitError(ValueError):
    """The clips cannot be split into non-empty train and test sets of whole sources."""


def _seeded_order(sources, seed: int) -> list[str]:
    return sorted(sources, key=lambda s: (stable_hash("release-split", seed, s), s))


def _stratified(counts: pd.DataFrame, test_fraction: float, passes: int) -> np.ndarray:
    """Steps 3-4 over ``counts`` (sources x cells, rows in visiting order): True where a source goes to test."""
    matrix = counts.to_numpy(dtype=float)
    totals = matrix.sum(axis=0)
    target = test_fraction * totals
    in_test = np.zeros(len(totals))
    test = np.zeros(len(matrix), dtype=bool)

    def gain(i: int, sign: float) -> float:
        touched = matrix[i] > 0
        now, moved = in_test[touched], in_test[touched] + sign * matrix[i][touched]
        return float((((now - target[touched]) ** 2 - (moved - target[touched]) ** 2) / totals[touched]).sum())

    for sweep in range(1 + passes):
        changed = False
        for i in range(len(matrix)):
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
    return test


def _rank(counts: np.ndarray, test: np.ndarray, test_fraction: float) -> tuple:
    """How good a choice of test sources is over the whole release, lower is better: (test larger than train,
    expressions of the release missing from train, distance of the test clips from ``test_fraction`` of all).
    ``counts``: sources x expressions."""
    total, in_test = counts.sum(), counts[test].sum()
    missing = (counts.sum(axis=0) > 0) & (counts[~test].sum(axis=0) == 0)
    return (bool(in_test > total * max(0.5, test_fraction)), int(missing.sum()),
            float(abs(in_test - test_fraction * total)))


def _whole_release(counts: np.ndarray, test_fraction: float) -> np.ndarray:
    """Step 5 over ``counts`` (sources x expressions, rows in visiting order): True where a source goes to test,
    the best choice by :func:`_rank`, ties to the earliest sources in the visiting order."""
    n = len(counts)
    if n <= EXACT_SOURCES:
        best = None
        for size in range(1, n):
            for chosen in itertools.combinations(range(n), size):
                test = np.zeros(n, dtype=bool)
                test[list(chosen)] = True
                key = (*_rank(counts, test, test_fraction), chosen)
                if best is None or key < best[0]:
                    best = (key, test)
        return best[1]
    test = np.zeros(n, dtype=bool)
    for i in range(n):  # greedy: add a source wherever that ranks better, keeping one source in train
        trial = test.copy()
        trial[i] = True
        if not trial.all() and _rank(counts, trial, test_fraction) < _rank(counts, test, test_fraction):
            test = trial
    if not test.any():  # every source alone is too large: the smallest one
        test[int(np.argmin(counts.sum(axis=1)))] = True
    return test


def assign_split(clips: pd.DataFrame, test_fraction: float, seed: int, passes: int = 3) -> pd.Series:
    """Return ``"train"``/``"test"`` for each row of ``clips`` (columns source_id, scene, expression); raises
    :class:`SplitError` when the clips come from fewer than two sources."""
    if clips.empty:
        return pd.Series([], index=clips.index, dtype=object)
    source = clips["source_id"].astype(str)
    if source.nunique() < 2:
        raise SplitError(f"all {len(clips)} released clips come from one source video ({source.iloc[0]}): a "
                         "grouped train/test split needs at least two sources; add sources and build again")
    cell = clips["scene"].astype(str) + "/" + clips["expression"].astype(str)
    order = _seeded_order(source.unique(), seed)
    test = _stratified(pd.crosstab(source, cell).loc[order], test_fraction, passes)
    by_expression = pd.crosstab(source, clips["expression"].astype(str)).loc[order].to_numpy(dtype=float)
    empty = test.all() or not test.any()
    if empty or abs(by_expression[test].sum() / len(clips) - test_fraction) > TOLERANCE:
        whole = _whole_release(by_expression, test_fraction)
        if empty or _rank(by_expression, whole, test_fraction) < _rank(by_expression, test, test_fraction):
            test = whole
    test_sources = {s for s, t in zip(order, test) if t}
    return source.map(lambda s: "test" if s in test_sources else "train")
