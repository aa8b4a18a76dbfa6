"""``ferv``: build facial-expression-in-video datasets the way FERV39k was built."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from cli import acquire, aggregate, annotation, clips, flows, models, predict, release
from cli.console import UserErrorsAsLines, console
from schemas.manifests import MANIFESTS, ManifestError, manifest_path, read_table
from schemas.taxonomy import TAXONOMY

app = typer.Typer(
    cls=UserErrorsAsLines,
    help="Build facial-expression-in-video datasets the way FERV39k was built.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.command()
def taxonomy(as_json: bool = typer.Option(False, "--json", help="Print the whole taxonomy as JSON.")) -> None:
    """Print scenarios, scenes, expressions and descriptors."""
    if as_json:
        print(json.dumps(TAXONOMY.to_dict(), indent=2, ensure_ascii=False))
        return
    scenes = Table(title=f"Scenarios and scenes (taxonomy {TAXONOMY.version})")
    for col in ("Scenario", "Code", "Scene", "Display name", "FERV39k clips"):
        scenes.add_column(col)
    for sc in TAXONOMY.scenarios:
        for i, name in enumerate(sc.scenes):
            scene = TAXONOMY.scene(name)
            scenes.add_row(sc.name if i == 0 else "", sc.code if i == 0 else "", name, scene.display,
                           f"{TAXONOMY.reference['scenes'][name]:,}")
    console.print(scenes)
    expressions = Table(title="Expressions and descriptors")
    for col in ("Id", "DFEW id", "Expression", "Descriptors", "FERV39k clips"):
        expressions.add_column(col)
    for e in sorted(TAXONOMY.expressions, key=lambda e: e.id):
        expressions.add_row(str(e.id), str(e.dfew_id), e.name, ", ".join(e.descriptors),
                            f"{TAXONOMY.reference['expressions'][e.name]:,}")
    expressions.add_row("", "", TAXONOMY.pass_label, "no usable face", "")
    console.print(expressions)


@app.command()
def status(workdir: Path = typer.Argument(..., help="The build's work directory.")) -> None:
    """Count what each manifest of a work directory holds."""
    table = Table(title=f"Manifests in {workdir}")
    for col in ("Manifest", "Rows", "File"):
        table.add_column(col)
    problems = 0
    for name in MANIFESTS:
        path = manifest_path(workdir, name)
        try:
            rows = str(read_table(workdir, name).num_rows) if path.exists() else "-"
        except ManifestError as exc:
            rows, problems = f"[red]invalid: {exc}[/red]", problems + 1
        table.add_row(name, rows, str(path) if path.exists() else "(not written yet)")
    console.print(table)
    if problems:
        raise typer.Exit(1)


for module in (acquire, models, clips, annotation, aggregate, release, flows, predict):
    module.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
