"""Progress reporting from library stages, without knowing who listens (rich in the CLI, logs in flows)."""

from __future__ import annotations

from typing import Protocol


class ProgressFn(Protocol):
    def __call__(self, task: str, done: int, total: int | None) -> None:
        """Report that ``done`` of ``total`` units of ``task`` are finished."""


def no_progress(task: str, done: int, total: int | None) -> None:
    """The default listener: ignore progress."""
