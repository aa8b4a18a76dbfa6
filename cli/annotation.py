"""``ferv labelstudio up|down|status``, ``ferv annotate push|sync``, ``ferv annotators add|list``."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import typer

from cli.annotation_report import add_report_command
from rich.table import Table

from cli.console import console, err_console, rich_progress
from schemas.config import BuildConfig, load_config

labelstudio_app = typer.Typer(help="Run a local Label Studio server (SQLite or PostgreSQL, serving the clips only).",
                              no_args_is_help=True)
annotate_app = typer.Typer(help="Push clips to Label Studio and sync the votes back.", no_args_is_help=True)
annotators_app = typer.Typer(help="Crowd annotators and experts (Label Studio users).", no_args_is_help=True)

CONFIG = typer.Option(None, "--config", "-c", help="Build config YAML (default: built-in).")
WORKDIR_OPT = typer.Option(None, "--workdir", "-w", help="Work directory; default: the config's.")


def _fail(message: str) -> None:
    err_console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(1)


def _data_dir(cfg: BuildConfig, workdir: Path | None) -> Path:
    return Path(cfg.labelstudio.data_dir or Path(workdir or cfg.workdir) / "labelstudio")


def _client(cfg: BuildConfig, workdir: Path | None):
    from annotation.client import (
        LabelStudioTokenMissing,
        LabelStudioUnavailable,
        connect,
    )

    try:
        client = connect(cfg.labelstudio, data_dir=str(_data_dir(cfg, workdir)))
        client.check()
        return client
    except (LabelStudioTokenMissing, LabelStudioUnavailable) as exc:
        _fail(str(exc))


@labelstudio_app.command()
def up(config: Path | None = CONFIG, workdir: Path | None = WORKDIR_OPT,
       port: int | None = typer.Option(None, help="Port (default: the one in labelstudio.url)."),
       wait_s: float = typer.Option(180.0, help="Seconds to wait for /health.")) -> None:
    """Start Label Studio in the background and wait until it answers.

    It serves the media root (labelstudio.media_root, default WORKDIR/media: links to clip folders only) and
    refuses to start when its data directory or the work directory would be served. PostgreSQL when
    DJANGO_DB=default and POSTGRE_NAME/USER/PASSWORD/HOST/PORT are set, else SQLite in the data directory."""
    from annotation import server
    from annotation.media import media_root

    cfg = load_config(config)
    root = Path(workdir or cfg.workdir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    data_dir = _data_dir(cfg, workdir)
    try:
        srv = server.start(data_dir, media_root(cfg.labelstudio, root),
                           port=port or urlparse(cfg.labelstudio.url).port or 8080,
                           token_env=cfg.labelstudio.token_env, wait_s=wait_s, private=[root],
                           served=[root / "clips"])
    except server.ServerError as exc:
        _fail(str(exc))
    console.print(f"Label Studio is up at {srv.url} (pid {srv.pid}); serving only {root / 'clips'} "
                  f"(through {srv.clips_root}); sign-up by invitation only")
    console.print(f"API token: ${cfg.labelstudio.token_env} if set, else the file {srv.token_file}; log: {srv.log_file}")


@labelstudio_app.command()
def down(config: Path | None = CONFIG, workdir: Path | None = WORKDIR_OPT) -> None:
    """Stop the local Label Studio of the data directory (never another process its pid file may name)."""
    from annotation import server

    cfg = load_config(config)
    data_dir = _data_dir(cfg, workdir).resolve()
    outcome = server.stop(data_dir)
    console.print({"stopped": "Label Studio stopped",
                   "none": "no local Label Studio was running",
                   "foreign": f"the pid file of {data_dir} named a live process that is not its Label Studio; "
                              "left that process alone and removed the stale pid file"}[outcome])


@labelstudio_app.command("status")
def status_cmd(config: Path | None = CONFIG, workdir: Path | None = WORKDIR_OPT) -> None:
    """Say whether Label Studio runs and answers."""
    from annotation import server

    cfg = load_config(config)
    st = server.status(_data_dir(cfg, workdir), cfg.labelstudio.url)
    console.print(f"{st['url']}: {'healthy' if st['healthy'] else 'not answering'}; "
                  f"local pid: {st['pid'] or 'none'}; data: {st['data_dir']}; token file: {st['token_file']}")
    if not st["healthy"]:
        raise typer.Exit(1)


@annotate_app.command()
def push(workdir: Path = typer.Argument(..., help="Work directory with clips.parquet."),
         config: Path | None = CONFIG) -> None:
    """Import clips as tasks (one project per annotator copy); a second push creates nothing."""
    from annotation.push import push_tasks

    cfg = load_config(config)
    client = _client(cfg, workdir)
    try:
        with rich_progress() as progress:
            summary = push_tasks(workdir, cfg, client, progress)
    except ValueError as exc:
        _fail(str(exc))
    console.print(f"pushed {summary.created} new tasks ({summary.existing} already there, "
                  f"{summary.recovered} recovered into tasks.parquet) to: {', '.join(summary.projects)}")


@annotate_app.command()
def sync(workdir: Path = typer.Argument(..., help="Work directory with tasks.parquet."),
         config: Path | None = CONFIG) -> None:
    """Pull new, edited and deleted annotations into votes.parquet."""
    from annotation.sync import sync_votes

    cfg = load_config(config)
    client = _client(cfg, workdir)
    with rich_progress() as progress:
        s = sync_votes(workdir, cfg, client, progress)
    console.print(f"synced {s.projects} projects: {s.seen} annotations, {s.new} new, {s.updated} updated, "
                  f"{s.deleted} deleted")


add_report_command(annotate_app)


@annotators_app.command()
def add(email: str = typer.Argument(...), role: str = typer.Option("crowd", help="crowd or expert"),
        config: Path | None = CONFIG, workdir: Path | None = WORKDIR_OPT,
        invite: bool = typer.Option(False, help="Return the invite link even with a local server.")) -> None:
    """Create an annotator: a one-time password in a private file (local server) or an invite link."""
    from annotation.users import add_annotator

    if role not in ("crowd", "expert"):
        _fail("--role must be crowd or expert")
    cfg = load_config(config)
    client = _client(cfg, workdir)
    data_dir = _data_dir(cfg, workdir)
    local = not invite and (data_dir / "labelstudio.pid").exists()
    who = add_annotator(client, email, role, data_dir=data_dir if local else None)  # type: ignore[arg-type]
    if who.password_file:
        console.print(f"{who.email} ({who.role}): one-time password in {who.password_file}")
    else:
        console.print(f"{who.email} ({who.role}): sign up at {who.invite_url}")


@annotators_app.command("list")
def list_cmd(config: Path | None = CONFIG, workdir: Path | None = WORKDIR_OPT) -> None:
    """List Label Studio users and their roles."""
    from annotation.users import list_annotators

    cfg = load_config(config)
    table = Table("id", "email", "role")
    for a in list_annotators(_client(cfg, workdir)):
        table.add_row(str(a.id), a.email, a.role or "-")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the top-level app."""
    app.add_typer(labelstudio_app, name="labelstudio")
    app.add_typer(annotate_app, name="annotate")
    app.add_typer(annotators_app, name="annotators")
