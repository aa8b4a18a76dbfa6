"""Shared CLI helpers: one rich console and a progress listener that draws rich progress bars."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pipeline.progress import ProgressFn

console = Console()
err_console = Console(stderr=True)


@contextmanager
def rich_progress() -> Iterator[ProgressFn]:
    """Yield a progress listener; each distinct task name gets its own bar."""
    bars: dict[str, int] = {}
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=err_console, transient=False,
    ) as progress:

        def report(task: str, done: int, total: int | None) -> None:
            if task not in bars:
                bars[task] = progress.add_task(task, total=total)
            progress.update(bars[task], completed=done, total=total)

        yield report


def workdir_arg(path: Path) -> Path:
    """Create the work directory if needed and return it resolved."""
    path = path.expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path
