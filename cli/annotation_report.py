"""``ferv annotate report``: the annotation quality-control report, printed and written as CSV/HTML."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.table import Table

from cli.console import console, err_console

MAX_ROWS = 40  # rows per table on the terminal; the CSV and HTML files hold all rows and columns
COPY_COLUMNS = ["group_id", "copy_index", "annotator", "gold_answered", "gold_correct", "gold_rate", "verdict"]
ANNOTATOR_COLUMNS = ["annotator", "role", "n_votes", "gold_accuracy", "peer_agreement", "expert_agreement",
                     "median_time_s", "flagged"]


def _rich_table(title: str, frame: pd.DataFrame, highlight: pd.Series | None = None) -> Table:
    table = Table(title=f"{title} ({len(frame)})", title_justify="left")
    for col in frame.columns:
        table.add_column(str(col), justify="right" if pd.api.types.is_numeric_dtype(frame[col]) else "left")
    shown = frame.head(MAX_ROWS)
    for i, row in enumerate(shown.itertuples(index=False)):
        cells = ["" if pd.isna(v) else f"{v:.3f}" if isinstance(v, float) else str(v) for v in row]
        flagged = highlight is not None and bool(highlight.iloc[i])
        table.add_row(*cells, style="red" if flagged else None)
    if len(frame) > len(shown):
        table.caption = f"{len(frame) - len(shown)} more rows in the CSV/HTML report"
    return table


def add_report_command(annotate_app: typer.Typer) -> None:
    """Add ``report`` to the ``annotate`` command group."""

    @annotate_app.command("report")
    def report(
        workdir: Path = typer.Argument(..., exists=True, file_okay=False, help="The build's work directory."),
        config: Path | None = typer.Option(None, "--config", "-c", help="Build config YAML (annotation section)."),
        out: Path | None = typer.Option(None, "--out", help="Where to write CSV/HTML [default: WORKDIR/reports/qc]."),
    ) -> None:
        """Print each group copy's verdict, annotator quality and progress; write them as CSV, PNG plots and HTML."""
        from annotation.report import TITLES, qc_report, write_qc_report
        from schemas.config import load_config
        from schemas.manifests import ManifestError

        try:
            qc = qc_report(workdir, load_config(config))
        except (ManifestError, ValueError, FileNotFoundError) as exc:
            err_console.print(f"[red]cannot build the QC report: {exc}[/red]")
            raise typer.Exit(1) from None
        verdicts = qc.copies["verdict"].value_counts().rename_axis("verdict").reset_index()
        console.print(_rich_table("Copy verdicts", verdicts))
        not_accepted = qc.copies.loc[qc.copies["verdict"] != "Accept", COPY_COLUMNS]
        console.print(_rich_table("Group copies not accepted", not_accepted))
        console.print(_rich_table(TITLES["annotators"], qc.annotators[ANNOTATOR_COLUMNS],
                                  highlight=qc.annotators["flagged"]))
        for name in ("progress_scene", "progress_scenario", "requeue", "needs_more"):
            console.print(_rich_table(TITLES[name], getattr(qc, name)))
        if qc.flagged:
            console.print(f"[red]flagged annotators (gold accuracy below threshold): {', '.join(qc.flagged)}[/red]")
        paths = write_qc_report(qc, out or workdir / "reports" / "qc")
        console.print(f"wrote {len(paths)} files to {paths[-1].parent}; open {paths[-1].name} in a browser")
