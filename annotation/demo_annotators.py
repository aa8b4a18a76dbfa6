"""Simulated annotation of a whole work directory, for ``ferv demo --simulate-annotators`` and end-to-end
tests: each simulated annotator labels one copy project against a deterministic pseudo-truth."""

from __future__ import annotations

from pathlib import Path

from annotation.client import LSClient
from annotation.simulate import simulate
from schemas.ids import stable_hash
from schemas.manifests import read_manifest
from schemas.taxonomy import TAXONOMY


def pseudo_truth(clip_ids: list[str]) -> dict[str, str]:
    """A fixed expression per clip, from its id: the 'truth' simulated annotators agree on."""
    names = TAXONOMY.expression_names
    return {c: names[int(stable_hash("truth", c), 16) % len(names)] for c in clip_ids}


def annotator_accuracies(n: int) -> list[float]:
    """Reliable annotators, each a little less than the one before: 0.95, 0.9, 0.85, ... (at least 0.6)."""
    return [max(0.6, 0.95 - 0.05 * i) for i in range(n)]


def simulate_workdir(workdir: str | Path, client: LSClient, n: int, seed: int = 0) -> int:
    """Annotator i labels every task of copy ``i % copies`` in ``tasks.parquet``; returns annotations posted."""
    tasks = read_manifest(workdir, "tasks")
    tasks = tasks[tasks["project_role"] == "copy"]
    if tasks.empty:
        raise ValueError(f"{Path(workdir) / 'tasks.parquet'} has no tasks; push clips first (ferv annotate push)")
    copies = sorted(tasks["copy_index"].unique())
    by_copy = {c: dict(zip(tasks.loc[tasks["copy_index"] == c, "clip_id"],
                           tasks.loc[tasks["copy_index"] == c, "task_id"].astype(int))) for c in copies}
    truth = pseudo_truth(sorted(tasks["clip_id"].unique()))
    done = simulate(client, [by_copy[copies[i % len(copies)]] for i in range(n)], truth,
                    annotator_accuracies(n), seed=seed)
    return sum(len(posted) for _, posted in done)
