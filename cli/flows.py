"""``ferv run CONFIG`` (the whole build through Prefect) and ``ferv demo`` (the embedded default)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from cli.console import console, err_console

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "demo.yaml"


def _prefect_env() -> None:
    # Prefect's temporary local server needs more than its default 20 s to start on a small machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")


def run(
    config: Path = typer.Argument(..., exists=True, dir_okay=False, help="The build config (YAML)."),
    workdir: Path = typer.Option(None, help="Override the config's work directory."),
    until: str = typer.Option("push", help="Last stage: clips, push or release."),
    simulate_annotators: int = typer.Option(0, help="Simulated annotators label every task (tests, demos)."),
) -> None:
    """Run the whole build for CONFIG through the Prefect flows, with progress in the log."""
    _prefect_env()
    from flows.build import build_dataset
    from flows.runtime import DASK_NEEDS_SERVER, configured_api_url
    from schemas.config import load_config

    runner = load_config(config).runner
    if runner.kind == "dask" and runner.dask_address and not configured_api_url():
        err_console.print(DASK_NEEDS_SERVER, soft_wrap=True, markup=False)
        raise typer.Exit(2)

    result = build_dataset(config=str(config), workdir=str(workdir) if workdir else None, until=until,
                           simulate=simulate_annotators)
    console.print(result)


def demo(
    workdir: Path = typer.Option(Path("work/demo"), help="Where the demo build lives."),
    port: int = typer.Option(8080, help="Port of the local Label Studio."),
    simulate_annotators: int = typer.Option(0, help="Finish the loop with N simulated annotators: a release."),
) -> None:
    """The main job on the embedded default: sample sources -> clips -> local Label Studio with tasks."""
    _prefect_env()
    from annotation import server
    from annotation.media import media_root
    from flows.build import build_dataset
    from pipeline.faces import models_dir
    from pipeline.models import fetch_model
    from pipeline.samples import demo_sources
    from schemas.config import load_config

    workdir = workdir.expanduser().resolve()
    cfg = load_config(DEMO_CONFIG, workdir=str(workdir))
    cfg.labelstudio.url = f"http://127.0.0.1:{port}"
    samples = workdir / "samples"
    paths = demo_sources(samples)
    console.print(f"[bold]sample sources[/bold]: {len(paths)} videos in {samples}")
    model = fetch_model("centerface", models_dir(cfg.faces))
    fetch_model("expression", models_dir(cfg.faces))  # expression-aware candidates (pipeline.expression)
    console.print(f"[bold]face model[/bold]: {model}")
    data_dir = Path(cfg.labelstudio.data_dir or workdir / "labelstudio")
    console.print("[bold]starting Label Studio[/bold] (about a minute on first start) ...")
    srv = server.start(data_dir, media_root(cfg.labelstudio, workdir), port=port, token_env=cfg.labelstudio.token_env,
                       private=[workdir], served=[workdir / "clips"])
    password_file = _admin_password(data_dir)
    result = build_dataset(config=cfg, until="release" if simulate_annotators else "push",
                           simulate=simulate_annotators, ls_data_dir=str(data_dir))
    clips = result.get("clips", {})
    console.print(f"\n[bold green]Label Studio is ready[/bold green] at {srv.url}")
    console.print(f"  log in as {server.ADMIN_EMAIL}, password in {password_file} (readable by you only); "
                  f"API token in {data_dir / server.TOKEN_FILE}")
    console.print(f"  projects: '{cfg.labelstudio.project_title} copy 1..{cfg.annotation.annotators_per_clip}', "
                  f"{clips.get('clips', '?')} clips pushed as tasks")
    console.print(f"  stop it with: ferv labelstudio down -w {workdir}")
    if "release" in result:
        console.print(f"[bold green]release[/bold green]: {result['release']['out']} "
                      f"({result['release']['clips']} clips; see REPORT.md there)")
    else:
        err_console.print("Annotate in the browser, then: ferv annotate sync / ferv aggregate / ferv release "
                          f"(or re-run with --simulate-annotators 3). Work directory: {workdir}")


def _admin_password(data_dir: Path) -> Path:
    """The local admin's password: set once with Label Studio's CLI, kept in a 0600 file, never printed."""
    import secrets

    from annotation import server
    from annotation.users import write_private

    path = data_dir / "admin-password"
    if not path.exists():
        password = secrets.token_urlsafe(12)
        server.set_password(data_dir, server.ADMIN_EMAIL, password)
        write_private(path, password)
    return path


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("demo")(demo)
