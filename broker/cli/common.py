"""Options and helpers shared by the client-side subcommands."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
import uvloop

from .errors import fail

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_BOOTSTRAP = "localhost:9092"


def bootstrap_option(f: F) -> F:
    return click.option(
        "-b", "--bootstrap-server", "bootstrap", envvar="KLAMM_BOOTSTRAP_SERVER",
        default=DEFAULT_BOOTSTRAP, show_default=True, metavar="HOST:PORT[,HOST:PORT]",
        help="Broker(s) to connect to (env KLAMM_BOOTSTRAP_SERVER).")(f)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a client coroutine on uvloop; any error becomes one line and a non-zero exit."""
    try:
        return uvloop.run(coro)
    except (click.ClickException, click.exceptions.Exit, SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:
        fail(exc)


def parse_kv(items: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{what} must look like key=value, got {item!r}")
        out[key.strip()] = value
    return out


async def wait_or_cancel(coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
    return await asyncio.wait_for(coro, timeout)
