"""Turning errors into one line that says what went wrong and what to do, never a traceback."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click


class CliError(click.ClickException):
    """A user-facing failure; its message is printed as one line and the exit code is 1."""


def run_cli(cli: click.Group, argv: list[str] | None) -> None:
    try:
        cli.main(args=argv, prog_name="klamm", standalone_mode=False)
    except BrokenPipeError:  # printing the answer met a closed pipe (topics list | head -0)
        stdout_closed()
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # click's usage and hint, then our one error line
        if exc.ctx is not None:
            click.echo(exc.ctx.get_usage(), err=True)
            click.echo(f"Try '{exc.ctx.command_path} --help' for help.", err=True)
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BaseException as exc:  # noqa: BLE001 - last line of defence against tracebacks
        if isinstance(exc, SystemExit):
            raise
        if isinstance(exc, KeyboardInterrupt):
            sys.exit(130)
        fail(exc)


def stdout_closed() -> NoReturn:
    """The reader of stdout went away (``klamm consume t | head -3``): end quietly with
    exit 0, as Unix tools do, and keep Python from complaining when it flushes stdout."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(0)


def fail(exc: BaseException) -> NoReturn:
    click.echo(f"error: {describe(exc)}", err=True)
    sys.exit(1)


def describe(exc: BaseException) -> str:
    """One line for a user: our own errors already say what to do."""
    from klamm.client.errors import ClientError
    from klamm.protocol.config import ConfigError
    from klamm.protocol.errors import KlammError
    from klamm.zk.errors import ZkError

    if isinstance(exc, (KlammError, ClientError, ConfigError, ZkError)):
        return str(exc)
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused ({exc}); is a broker running there?"
    if isinstance(exc, OSError):
        filename = getattr(exc, "filename", None)
        return f"{exc.strerror or exc}" + (f" ({filename})" if filename else "")
    return f"{type(exc).__name__}: {exc}"
