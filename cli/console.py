"""Shared CLI helpers: one rich console, a progress listener that draws rich progress bars, and the one place
that turns user errors into one line and exit code 2."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import sys

import typer
from rich.console import Console
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup
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


USER_ERROR_EXIT = 2


def user_error_line(exc: BaseException) -> str | None:
    """The one line for a user error (bad input: a file, a setting, a token), or None for a bug. Typed user
    errors (:class:`schemas.errors.UserError`) and manifests that fail their schema carry their own message;
    a refused Label Studio token gets one here."""
    from schemas.errors import UserError
    from schemas.manifests import ManifestError

    if isinstance(exc, (UserError, ManifestError)):
        return " ".join(str(exc).split())
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403) and type(exc).__module__.split(".")[0] in ("label_studio_sdk", "httpx", "requests"):
        return (f"Label Studio refused the API token ({status}): set the token environment variable named by "
                "labelstudio.token_env (default FERV_LS_TOKEN) to a valid token (Account & Settings > Access "
                "Token), or unset it to use the local server's token file")
    return None


class UserErrorsAsLines(TyperGroup):
    """Commands whose user errors end with one line on stderr naming the input and what to do, and exit code
    2; any other exception is a bug and keeps its traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Click's usage errors (a missing argument, a path that does not exist) as one line too."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except NoArgsIsHelpError as exc:  # the help text, as click shows it
            exc.show()
            sys.exit(exc.exit_code)
        except UsageError as exc:
            where = f"; see `{exc.ctx.command_path} --help`" if exc.ctx is not None else ""
            typer.echo(f"error: {' '.join(exc.format_message().split()).rstrip('.')}{where}", err=True)
            sys.exit(USER_ERROR_EXIT)
        except ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except Exception as exc:
            line = user_error_line(exc)
            if line is None:
                raise
            typer.echo(f"error: {line}", err=True)
            raise typer.Exit(USER_ERROR_EXIT) from None
