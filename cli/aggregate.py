"""``ferv aggregate WORKDIR``: votes -> labels.parquet and agreement; ``ferv evaluate RELEASE PREDICTIONS``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from cli.console import console
from schemas.config import load_config

# annotation.aggregate (crowd-kit on demand) and pipeline.evaluate (matplotlib) load inside the commands.


class Method(str, Enum):
    majority = "majority"
    dawid_skene = "dawid_skene"


def _fail(message: str) -> None:
    console.print(f"[red]{message}[/red]")
    raise typer.Exit(1)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _scores_table(title: str, frame, key: str) -> Table:
    table = Table(title=title)
    for col in (key.capitalize(), "Clips", "WAR", "UAR"):
        table.add_column(col, justify="left" if col == key.capitalize() else "right")
    for row in frame.itertuples(index=False):
        table.add_row(str(getattr(row, key)), str(row.n_clips), f"{row.war:.4f}", f"{row.uar:.4f}")
    return table


def register(app: typer.Typer) -> None:
    """Add ``ferv aggregate`` and ``ferv evaluate`` to the top-level app."""

    @app.command("aggregate")
    def aggregate_cmd(
        workdir: Path = typer.Argument(..., help="The build's work directory (votes.parquet, tasks.parquet, "
                                                 "gold.parquet)."),
        config: Path | None = typer.Option(None, "--config", "-c", help="Build config YAML (default: built-in)."),
        method: Method | None = typer.Option(None, "--method", "-m", help="Override aggregate.method."),
    ) -> None:
        """Aggregate the current votes into labels.parquet (accepted / ambiguous / unusable / gold) and
        write the build's agreement (Fleiss' kappa, Krippendorff's alpha) to agreement.json."""
        from annotation.aggregate import AGREEMENT_FILE, aggregate, read_agreement

        try:
            cfg = load_config(config)
            aggregate(workdir, cfg, method.value if method else None)
        except (ValueError, FileNotFoundError) as exc:
            _fail(str(exc))
        figures = read_agreement(workdir)
        table = Table(title=f"Labels of {workdir} ({figures['method']})")
        for col in ("Clips", *(s.capitalize() for s in figures["status"])):
            table.add_column(col, justify="right")
        table.add_row(str(figures["clips"]), *map(str, figures["status"].values()))
        console.print(table)
        agreement = Table(title="Crowd agreement (clips with at least two counted votes)")
        for col in ("Fleiss' kappa", "Krippendorff's alpha (nominal)", "Clips", "Votes", "Annotators"):
            agreement.add_column(col, justify="right")
        agreement.add_row(_figure(figures["fleiss_kappa"]), _figure(figures["krippendorff_alpha_nominal"]),
                          str(figures["n_items"]), str(figures["n_votes"]), str(figures["n_annotators"]))
        console.print(agreement)
        held = figures["votes_current"] - figures["votes_counted"]
        if held:
            console.print(f"[yellow]{held} of {figures['votes_current']} current votes not counted: their copies "
                          "are pending gold judgement, judged Unacceptable, unassigned to a group, or over the "
                          "per-clip cap (aggregate.trusted_copies: false counts every copy).[/yellow]")
        console.print(f"wrote {Path(workdir) / 'labels.parquet'} and {Path(workdir) / AGREEMENT_FILE}")

    @app.command("evaluate")
    def evaluate_cmd(
        release: Path = typer.Argument(..., help="A release folder (4_setups/All_scenes/test_All.csv)."),
        predictions: Path = typer.Argument(..., help="CSV: `path` or `clip_id`, and `prediction` or one score "
                                                     "column per expression."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Folder for results.json, per_*.csv and the "
                                                                  "confusion matrix (default PREDICTIONS-eval)."),
    ) -> None:
        """WAR and UAR of predictions on the test split: overall, per scenario, per scene; confusion matrix."""
        from pipeline.evaluate import EXPRESSIONS, evaluate

        out = out or predictions.with_name(f"{predictions.stem}-eval")
        result = evaluate(release, predictions, out)  # (an EvaluationError is a user error: one line, exit 2)
        console.print(f"[bold]{result.n_clips} test clips: WAR {result.war:.4f}  UAR {result.uar:.4f}[/bold]")
        console.print(_scores_table("Per scenario", result.per_scenario, "scenario"))
        console.print(_scores_table("Per scene", result.per_scene, "scene"))
        confusion = Table(title="Confusion matrix (rows true, columns predicted)")
        confusion.add_column("")
        for name in EXPRESSIONS:
            confusion.add_column(name[:4], justify="right")
        for name, row in result.confusion.iterrows():
            confusion.add_row(name, *map(str, row.tolist()))
        console.print(confusion)
        console.print(f"wrote {', '.join(str(p) for p in result.files.values())}")
