"""``ferv clips WORKDIR``: shots, face tracks and candidate clips for every source of a work directory."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cli.console import console, rich_progress, workdir_arg
from schemas.config import load_config


def register(app: typer.Typer) -> None:
    """Add ``ferv clips`` to the top-level app."""

    @app.command("clips")
    def clips(
        workdir: Path = typer.Argument(..., help="The build's work directory (with sources.parquet)."),
        config: Path | None = typer.Option(None, "--config", "-c", help="Build config YAML (default: built-in)."),
        workers: int | None = typer.Option(None, "--workers", "-w", min=1,
                                           help="Worker processes over sources (default: clips.workers; "
                                                "1 = in-process)."),
    ) -> None:
        """Decode each source once -> shots, faces, tracks -> candidate clips (clips.parquet, rejects.parquet)."""
        from pipeline.clips import make_clips

        cfg = load_config(config)
        root = workdir_arg(workdir)
        with rich_progress() as progress:
            summary = make_clips(root, cfg, progress=progress, workers=workers)
        table = Table(title=f"Clips in {root}")
        for col in ("Sources", "Processed", "Skipped (up to date)", "Failed", *summary.counts):
            table.add_column(col)
        table.add_row(*map(str, (summary.inputs, summary.processed, summary.skipped, summary.failed,
                                 *summary.counts.values())))
        console.print(table)
        for line in summary.failures:
            console.print(f"[red]failed: {line}[/red]")
        if summary.failed:
            console.print(f"[yellow]{summary.failed} source(s) failed; see {root / 'failures.parquet'}; fix or remove "
                          "them and re-run (finished sources are skipped)[/yellow]")
