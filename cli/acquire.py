"""``ferv acquire``: fetch source videos per scene keyword, from a URL list, or from a local folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cli.console import console, err_console, rich_progress, workdir_arg


def acquire(
    workdir: Path = typer.Argument(..., help="The build's work directory (videos/ and sources.parquet)."),
    config: Path = typer.Option(None, "--config", "-c", exists=True, dir_okay=False, help="Build config (YAML)."),
    urls: Path = typer.Option(None, "--urls", exists=True, dir_okay=False,
                              help="A file of URLs, one per line, optionally ',Scene' after each."),
    local: Path = typer.Option(None, "--local", exists=True, file_okay=False,
                               help="A folder of videos; sub-folders named after scenes give the scene."),
    scene: str = typer.Option(None, help="Scene for every source (or the scene to search)."),
    search: bool = typer.Option(None, "--search/--no-search", help="Search the scenes' keywords with yt-dlp."),
    allow_private: bool = typer.Option(False, "--allow-private",
                                       help="Also fetch from loopback, link-local and private addresses."),
) -> None:
    """Fetch source videos into WORKDIR/videos and record them in sources.parquet."""
    from pipeline.acquire import acquire as run
    from schemas.config import load_config
    from schemas.manifests import read_manifest

    root = workdir_arg(workdir)
    cfg = load_config(config)
    with rich_progress() as progress:
        summary = run(root, cfg, urls_file=urls, local_dir=local, scene=scene, search=search,
                      allow_private=allow_private, progress=progress)
    table = Table(title=f"Acquisition into {root}")
    for col in ("fetched", "already there", "failed", "sources in manifest"):
        table.add_column(col)
    table.add_row(str(summary.fetched), str(summary.skipped), str(summary.failed),
                  str(len(read_manifest(root, "sources"))))
    console.print(table)
    if summary.failed:
        err_console.print(f"{summary.failed} sources failed; see {root / 'failures.parquet'} (ferv status)")


def register(app: typer.Typer) -> None:
    app.command("acquire")(acquire)
