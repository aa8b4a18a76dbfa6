"""The runner: how a per-input stage is run, locally or by a flow.

A stage is an object built once from the resolved config (its settings checked and resolved there) and called
per record (``stage(record)``); it returns an :class:`Outcome` (its rows per manifest, rejects included) or
raises a typed error. It does not know how it is run. The runner owns the rest:

- completion markers and part files: a stage with ``parts`` writes its rows per input to
  ``WORKDIR/parts/<input_id>/<name>.parquet`` with a ``DONE`` marker holding ``stage.stamp`` (the hash of the
  settings that shape the rows); an input whose marker matches is skipped; :func:`merge_parts` joins the parts.
  A stage without parts appends its rows to its ``into`` manifest, keyed by ``key_columns``;
- failure rows: a failed input is recorded in ``failures.parquet`` and cleared when it later succeeds
  (:mod:`pipeline.failures`), whether run by :func:`run_all` or by a flow's task through :func:`run_one`;
- retries: ``retries`` more attempts after a failure, with back-off;
- the local process pool (:func:`run_all`).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol, Sequence

import pyarrow as pa

from pipeline.failures import clear_failures, failure_of, record_failures
from pipeline.progress import ProgressFn, no_progress
from schemas.manifests import SCHEMAS, append_manifest, read_table, write_manifest
from schemas.records import FailureRecord

DONE = "DONE"


@dataclass
class Outcome:
    """What one input gave: rows per manifest (the stage's; once stored, the runner keeps only their
    ``counts``), or the failure recorded for it; ``skipped`` when its completion marker matched."""

    input_id: str
    rows: dict[str, list] = field(default_factory=dict)
    failure: FailureRecord | None = None
    skipped: bool = False
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)  # the stage's own figures (frames decoded, ...)

    @property
    def ok(self) -> bool:
        return self.failure is None


class Stage(Protocol):
    name: str  # the stage's name in failures.parquet
    parts: dict[str, list[str]]  # manifests written per input, with their sort keys; empty: rows go to `into`
    into: str  # without parts: the manifest rows are appended to ...
    key_columns: list[str]  # ... keyed by these columns
    stamp: str  # hash of the settings that shape the rows

    def key(self, record: Any) -> str:
        """The input id of ``record``."""
        ...

    def __call__(self, record: Any) -> Outcome:
        ...


class StageFailed(RuntimeError):
    """Raised by a flow task whose input failed (its failure row is already recorded), so the task fails and
    its declared retries run."""

    def __init__(self, failure: FailureRecord):
        super().__init__(f"{failure.input_id}: {failure.message}")
        self.failure = failure


@dataclass
class RunSummary:
    inputs: int
    processed: int = 0
    skipped: int = 0
    failed: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # rows per merged manifest
    failures: list[str] = field(default_factory=list)  # "input_id: message"
    outcomes: list[Outcome] = field(default_factory=list)


def part_dir(workdir: str | Path, input_id: str) -> Path:
    return Path(workdir) / "parts" / input_id


def completion_marker(workdir: str | Path, input_id: str) -> Path:
    return part_dir(workdir, input_id) / DONE


def is_done(workdir: str | Path, stage: Stage, input_id: str) -> bool:
    marker = completion_marker(workdir, input_id)
    return marker.is_file() and marker.read_text().strip() == stage.stamp


def _backoff(attempt: int) -> float:
    return min(2.0 ** attempt, 30.0)


def _store(workdir: Path, stage: Stage, outcome: Outcome) -> None:
    if stage.parts:
        folder = part_dir(workdir, outcome.input_id)
        for name in stage.parts:
            write_manifest(folder, name, outcome.rows.get(name, []))
        tmp = folder / f".{DONE}.tmp"
        tmp.write_text(stage.stamp + "\n")
        os.replace(tmp, folder / DONE)
    elif outcome.rows.get(stage.into):
        append_manifest(workdir, stage.into, outcome.rows[stage.into], key=stage.key_columns)


def run_one(workdir: str | Path, stage: Stage, record: Any, retries: int = 0) -> Outcome:
    """Run ``stage`` on one record: skip it if its marker matches; else call it (up to ``retries`` more times
    after a failure), store its rows, and clear its old failure row; a final failure is recorded and returned."""
    workdir, input_id = Path(workdir), stage.key(record)
    if stage.parts:
        if is_done(workdir, stage, input_id):
            return Outcome(input_id, skipped=True)
        completion_marker(workdir, input_id).unlink(missing_ok=True)
    started = time.perf_counter()
    for attempt in range(retries + 1):
        try:
            outcome = stage(record)
            break
        except Exception as exc:  # recorded as the input's failure; the other inputs go on
            stops = getattr(exc, "stops_run", False)  # (such as a full disk: every later input would fail too)
            if attempt == retries or stops:
                failure = failure_of(stage.name, input_id, exc)
                record_failures(workdir, [failure])
                if stops:
                    raise
                return Outcome(input_id, failure=failure, seconds=time.perf_counter() - started)
            time.sleep(_backoff(attempt))
    _store(workdir, stage, outcome)
    clear_failures(workdir, stage.name, [input_id])
    outcome.counts = {name: len(rows) for name, rows in outcome.rows.items()}
    outcome.rows, outcome.seconds = {}, time.perf_counter() - started
    return outcome


def fail(workdir: str | Path, stage_name: str, input_id: str, exc: BaseException) -> Outcome:
    """Record ``exc`` as the failure of an input that could not even be run (a crashed worker or task)."""
    failure = failure_of(stage_name, input_id, exc)
    record_failures(workdir, [failure])
    return Outcome(input_id, failure=failure)


def merge_parts(workdir: str | Path, stage: Stage, input_ids: Sequence[str]) -> dict[str, int]:
    """Join the complete parts of ``input_ids`` into the top-level manifests (a stable sort on the stage's keys);
    rows per manifest. In Arrow throughout: at FERV39k's size a merge joins thousands of parts."""
    workdir = Path(workdir)
    done = sorted(folder for folder in map(lambda i: part_dir(workdir, i), set(input_ids)) if (folder / DONE).is_file())
    counts = {}
    for name, keys in stage.parts.items():
        tables = [t for t in (read_table(d, name) for d in done) if t.num_rows]
        merged = pa.concat_tables(tables) if tables else SCHEMAS[name].empty_table()
        merged = merged.sort_by([(key, "ascending") for key in keys])
        write_manifest(workdir, name, merged)
        counts[name] = merged.num_rows
    return counts


def summarize(outcomes: Sequence[Outcome], inputs: int) -> RunSummary:
    summary = RunSummary(inputs=inputs, outcomes=list(outcomes))
    for o in outcomes:
        if not o.ok:
            summary.failed += 1
            summary.failures.append(f"{o.input_id}: {o.failure.message}")
        elif o.skipped:
            summary.skipped += 1
        else:
            summary.processed += 1
    return summary


def run_all(workdir: str | Path, stage: Stage, records: Sequence[Any], workers: int = 1, retries: int = 0,
            progress: ProgressFn = no_progress) -> RunSummary:
    """Run ``stage`` over ``records``: in this process (``workers`` 1) or in a pool of spawned processes (each
    given ``stage.for_workers(workers)`` where the stage has it); then merge its parts."""
    workdir = Path(workdir)
    workers = max(1, min(workers, len(records) or 1))
    outcomes: list[Outcome] = []
    label = stage.name
    progress(label, 0, len(records))
    if workers == 1:
        for record in records:
            outcomes.append(run_one(workdir, stage, record, retries))
            progress(label, len(outcomes), len(records))
    else:
        shared = stage.for_workers(workers) if hasattr(stage, "for_workers") else stage
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(run_one, workdir, shared, record, retries): record for record in records}
            for future in as_completed(futures):
                exc = future.exception()
                outcomes.append(future.result() if exc is None else fail(workdir, stage.name,
                                                                         stage.key(futures[future]), exc))
                progress(label, len(outcomes), len(records))
    summary = summarize(outcomes, len(records))
    if stage.parts:
        summary.counts = merge_parts(workdir, stage, [stage.key(r) for r in records])
    return summary
