"""Failure rows (``failures.parquet``): the one place they are built, recorded and cleared.

A row names the stage, the input, the error's kind (its type name: typed errors such as
:class:`pipeline.media.TruncatedVideo` tell a broken stream from a missing file) and a one-line message
that says what to do. A later failure of the same stage and input replaces the earlier one; an input that
succeeds has its row cleared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from schemas.manifests import append_manifest, manifest_lock, manifest_path, read_manifest, write_manifest
from schemas.records import FailureRecord


def failure_row(stage: str, input_id: str, kind: str, message: str) -> FailureRecord:
    """One failure row; ``message`` is kept to one line."""
    return FailureRecord(stage=stage, input_id=str(input_id), error_kind=kind, message=" ".join(str(message).split()))


def failure_of(stage: str, input_id: str, exc: BaseException) -> FailureRecord:
    """The row for ``exc``: its type name as the kind, its message as the message."""
    return failure_row(stage, input_id, type(exc).__name__, str(exc) or repr(exc))


def record_failures(workdir: str | Path, rows: Iterable[FailureRecord]) -> None:
    """Add rows (a row of the same stage and input replaces the older one)."""
    rows = list(rows)
    if rows:
        append_manifest(workdir, "failures", rows, key=["stage", "input_id"])


def clear_failures(workdir: str | Path, stage: str, input_ids: Iterable[str] | None = None) -> None:
    """Forget the stage's rows of ``input_ids`` (all of the stage's rows when None): they succeeded."""
    if not manifest_path(workdir, "failures").exists():
        return
    ids = None if input_ids is None else {str(i) for i in input_ids}
    with manifest_lock(workdir, "failures"):
        frame = read_manifest(workdir, "failures")
        drop = (frame["stage"] == stage) & (frame["input_id"].isin(ids) if ids is not None else True)
        if drop.any():
            write_manifest(workdir, "failures", frame[~drop])


def stage_failures(workdir: str | Path, stage: str) -> list[dict]:
    """The stage's rows as dicts (input_id, error_kind, message)."""
    frame = read_manifest(workdir, "failures")
    return frame.loc[frame["stage"] == stage, ["input_id", "error_kind", "message"]].to_dict("records")
