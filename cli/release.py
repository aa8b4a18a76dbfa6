"""``ferv release``: build a release in the FERV39k layout, derive DFER lists, rebuild from metadata, check.

``ferv release WORKDIR OUT`` is short for ``ferv release build WORKDIR OUT``: a first argument that is not
one of the sub-commands (build, export, rebuild, check) is taken as a work directory. A work directory that
is literally named like a sub-command needs the explicit form (``ferv release build export OUT``).
"""

from __future__ import annotations

import os
from pathlib import Path

import click
import typer
from typer.core import TyperGroup

from cli.console import console, rich_progress
from schemas.config import load_config

# pipeline.release (pandas, matplotlib, OpenCV) is imported inside the commands, so `ferv --help` stays quick.


class _BuildByDefault(TyperGroup):
    """A group whose unknown first argument means ``build``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["build", *args]
        return super().parse_args(ctx, args)


release_app = typer.Typer(
    cls=_BuildByDefault, no_args_is_help=True,
    help="Release in the FERV39k layout. `ferv release WORKDIR OUT` builds (same as `ferv release build`); "
         "`export`, `rebuild` and `check` work on a built release.")


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[red]{message}[/red]")
    raise typer.Exit(code)


@release_app.command("build")
def build(
    workdir: Path = typer.Argument(..., help="The build's work directory (clips.parquet, labels.parquet, ...)."),
    out: Path = typer.Argument(..., help="Release folder to create or bring up to date."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Build config YAML (default: built-in)."),
) -> None:
    """Build the release of WORKDIR in OUT (same inputs and seed: byte-identical files but README.md)."""
    from pipeline.release import ReleaseError, SplitError, build_release

    try:
        cfg = load_config(config)
        with rich_progress() as progress:
            summary = build_release(workdir, out, cfg, progress=progress)
    except SplitError as exc:  # the input cannot make a release (one source): exit 2, as for bad input
        _fail(str(exc), code=2)
    except (ReleaseError, ValueError, FileNotFoundError) as exc:
        _fail(str(exc))
    console.print(f"{summary.clips} clips ({summary.train} train, {summary.test} test) from {summary.sources} "
                  f"sources ({summary.test_sources} in test) in {summary.out}; {summary.files_written} files written"
                  + (f"; {summary.skipped} labelled clips skipped (see failures.parquet)" if summary.skipped else ""))


@release_app.command("export")
def export(
    out: Path = typer.Argument(..., help="A built release."),
    fmt: str = typer.Option(..., "--format", "-f", help="dfer-clip | mae-dfer (lists) | hf (Hugging Face datasets "
                                                        "folder) | webdataset (tar shards)."),
    dest: Path | None = typer.Option(None, "--dest", help="Folder for the export (default OUT/5_exports/FORMAT)."),
    root: Path | None = typer.Option(None, "--root", help="Lists: where the release will live, for the paths in "
                                                          "them (default: OUT, absolute)."),
    shard_clips: int = typer.Option(1000, "--shard-clips", help="webdataset: clips per shard."),
) -> None:
    """Export a release: the train/test lists DFER code reads (dfer-clip: `path frames label`, mae-dfer:
    `path label`; DFEW label order), a Hugging Face `datasets` folder (`load_dataset(DEST)`), or WebDataset
    shards. Fails on an empty split list."""
    from pipeline.release import export_release

    try:
        paths = export_release(out, fmt, dest, root, shard_clips)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    if fmt in ("hf", "webdataset"):
        console.print(f"wrote {len(paths)} {fmt} files in {os.path.commonpath(paths)}")
    else:
        for path in paths:
            console.print(f"wrote {path}")


@release_app.command("rebuild")
def rebuild(
    metadata: Path = typer.Argument(..., help="A release's metadata.parquet."),
    sources: Path = typer.Argument(..., help="Folder holding the source videos (found by SHA-256 or source id)."),
    out: Path = typer.Argument(..., help="Folder for the re-cut release."),
) -> None:
    """Re-cut every clip of a release from its sources and verify the frames against the stored checksums."""
    from pipeline.release import ReleaseError, rebuild_release

    try:
        with rich_progress() as progress:
            summary = rebuild_release(metadata, sources, out, progress=progress)
    except (ReleaseError, ValueError, OSError) as exc:
        _fail(str(exc))
    console.print(f"{summary.matched} of {summary.clips} clips re-cut with matching checksums in {summary.out}")
    for problem in summary.problems:
        console.print(f"[red]{problem}[/red]")
    if summary.problems:
        raise typer.Exit(1)


@release_app.command("check")
def check(out: Path = typer.Argument(..., help="A built release.")) -> None:
    """Check layout, numbering, frames, lists, splits (no source in both) and SHA256SUMS."""
    from pipeline.release import check_release

    problems = check_release(out)
    for problem in problems:
        console.print(f"[red]{problem}[/red]")
    if problems:
        raise typer.Exit(1)
    console.print(f"{out}: ok")


def register(app: typer.Typer) -> None:
    """Add ``ferv release`` and its sub-commands to the top-level app."""
    app.add_typer(release_app, name="release")
