"""Candidate selection (pipeline.select) on tracks with known expression scores: windows spread over the
whole track, placed around expression events, never overlapping, each dropped window with its reason."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from pipeline.expression import EXPRESSIONS
from pipeline.select import expression_runs, select_candidates, spread_windows
from pipeline.tracks import Track
from schemas.config import SelectConfig

FPS = Fraction(25)  # 0.5-2 s: 13 to 50 frames
STRIDE = 8


def one_hot(name: str, p: float = 0.9) -> np.ndarray:
    row = np.full(len(EXPRESSIONS), (1 - p) / (len(EXPRESSIONS) - 1))
    row[EXPRESSIONS.index(name)] = p
    return row


def track(n: int, labels: list[tuple[int, str]] | None = None, side: float = 80.0, start: int = 0) -> Track:
    """A steady face over ``n`` frames, detected every STRIDE frames; ``labels`` (first frame, expression)
    give the scores from that frame on (None: scoring off)."""
    frames = np.arange(start, start + n)
    detected = frames % STRIDE == 0
    boxes = np.tile([10.0, 10.0, 10.0 + side, 10.0 + side], (n, 1))
    blur = np.where(detected, 100.0, np.nan)
    expression = np.full((n, len(EXPRESSIONS) if labels else 0), np.nan)
    for first, name in labels or []:
        expression[(frames >= first) & detected] = one_hot(name)
    return Track(frames, boxes, np.full(n, 0.9), ~detected, blur, expression)


def spans(kept) -> list[tuple[int, int]]:
    return [(c.start, c.end) for c in kept]


def assert_apart(kept) -> None:
    for a, b in zip(kept, kept[1:]):
        assert a.end <= b.start


def test_without_scores_windows_spread_over_the_whole_track():
    kept, rejects = select_candidates(track(500), FPS, SelectConfig(max_clips_per_track=3), "s", "t", 0, STRIDE)
    assert spans(kept) == [(58, 108), (225, 275), (392, 442)]  # the middle of each third, 2 s each
    assert all(c.expression is None and c.intensity is None for c in kept)
    assert {r.reason for r in rejects} == {"track_limit"}  # the fallback tiles, not needed
    kept, _ = select_candidates(track(60), FPS, SelectConfig(max_clips_per_track=3), "s", "t", 0, STRIDE)
    assert spans(kept) == [(0, 30), (30, 60)]  # a short track: two shorter windows rather than one


def test_the_old_head_of_track_selection_is_gone():
    """20 s of one face going from neutral (first 6 s) to happy: a candidate comes from the happy part."""
    kept, _ = select_candidates(track(500, [(0, "Neutral"), (150, "Happy")]), FPS,
                                SelectConfig(max_clips_per_track=3), "s", "t", 0, STRIDE)
    assert_apart(kept)
    assert any(c.start >= 150 and c.expression == "Happy" for c in kept)
    assert any(c.end <= 150 and c.expression == "Neutral" for c in kept)


def test_windows_sit_on_expression_events_with_lengths_between_the_limits():
    labels = [(0, "Neutral"), (96, "Surprise"), (120, "Neutral"), (296, "Sad"), (400, "Neutral")]
    kept, rejects = select_candidates(track(480, labels), FPS, SelectConfig(max_clips_per_track=3), "s", "t", 0,
                                      STRIDE)
    assert_apart(kept)
    by = {c.expression: c for c in kept}
    assert set(by) == {"Surprise", "Sad", "Neutral"}
    surprise, sad = by["Surprise"], by["Sad"]
    assert surprise.start <= 96 and surprise.end >= 120  # covers the burst (96..119)
    assert 13 <= surprise.end - surprise.start < 50  # as long as the burst, not the longest
    assert 296 <= sad.start and sad.end <= 400 and sad.end - sad.start == 50
    assert surprise.intensity > 0.8 and by["Neutral"].intensity < 0.2
    assert all(13 <= c.end - c.start <= 50 for c in kept)
    assert all(r.reason in {"track_limit", "overlap"} for r in rejects)


def test_quality_checks_drop_windows_with_reasons_and_the_next_proposal_is_taken():
    small = track(60, side=30.0)
    kept, rejects = select_candidates(small, FPS, SelectConfig(max_clips_per_track=2), "s", "t", 0, STRIDE)
    assert not kept and {r.reason for r in rejects} == {"small_face", "too_short"}
    blurry = track(200)
    blurry.blur[:100] = 1.0  # the first half is blurred: windows come from the second
    kept, rejects = select_candidates(blurry, FPS, SelectConfig(max_clips_per_track=2), "s", "t", 0, STRIDE)
    assert kept and all(c.start >= 96 for c in kept)
    assert "blurry" in {r.reason for r in rejects}
    assert len({r.candidate_id for r in rejects}) == len(rejects)


@pytest.mark.parametrize("n, count, expected", [
    (500, 3, [(58, 108), (225, 275), (392, 442)]),
    (60, 3, [(0, 30), (30, 60)]),
    (20, 3, [(0, 20)]),
    (10, 3, [(0, 10)]),  # too short: left for the caller to reject
], ids=["long", "short", "one-window", "under-min"])
def test_spread_windows(n, count, expected):
    assert [(w.start, w.end) for w in spread_windows(0, n, count, 13, 50)] == expected


def test_expression_runs_follow_changes_of_the_top_class():
    frames = np.arange(0, 160, 8)
    probs = np.array([one_hot("Neutral")] * 10 + [one_hot("Happy")] * 10)
    runs = expression_runs(frames, probs)
    assert [(r.first, r.last, EXPRESSIONS[r.expression]) for r in runs] == [(0, 72, "Neutral"), (80, 152, "Happy")]
    assert runs[0].weight == 0.0 and runs[1].weight == pytest.approx(0.9 + 0.1 / 6 * 5, abs=0.02)
    assert runs[1].peak == 120  # the middle of its plateau


def test_scores_never_cost_coverage_free_parts_are_filled_around_the_event_windows():
    cfg = SelectConfig(max_clips_per_track=3)
    for n in (75, 200, 500):
        plain, _ = select_candidates(track(n), FPS, cfg, "s", "t", 0, STRIDE)
        scored, _ = select_candidates(track(n, [(0, "Neutral"), (n // 2, "Happy")]), FPS, cfg, "s", "t", 0, STRIDE)
        assert len(scored) >= len(plain), n
        assert_apart(scored)
