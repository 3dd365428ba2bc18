"""Options and helpers shared by the client-side subcommands."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from .errors import fail, stdout_closed

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
    import uvloop

    try:
        return uvloop.run(coro)
    except (click.ClickException, click.exceptions.Exit, SystemExit, KeyboardInterrupt):
        raise
    except BrokenPipeError:
        stdout_closed()
    except Exception as exc:
        fail(exc)


def client_config_options(kind: str) -> Callable[[F], F]:
    """``--KIND-property key=value`` (repeatable) and ``--KIND.config FILE``, as Kafka's
    console tools have: any client setting, by its Kafka name."""
    def decorate(f: F) -> F:
        f = click.option(f"--{kind}.config", "config_file", metavar="FILE",
                         type=click.Path(dir_okay=False),
                         help=f"A properties file of {kind} settings (Kafka names).")(f)
        return click.option(f"--{kind}-property", "properties", multiple=True,
                            metavar="KEY=VALUE",
                            help=f"A {kind} setting by its Kafka name, e.g. "
                                 f"{_EXAMPLE[kind]} (repeatable; wins over the file).")(f)
    return decorate


_EXAMPLE = {"producer": "max.request.size=4194304", "consumer": "fetch.max.bytes=1048576"}


def client_settings(defaults: dict[tuple[str, str], Any], config_file: str | None,
                    properties: tuple[str, ...], kind: str) -> dict[str, Any]:
    """The client's settings: the command's own options, then the file, then each
    ``--KIND-property``; options the user typed win over both."""
    from klamm.broker.config import load_properties

    ctx = click.get_current_context()
    typed = {name for name in ctx.params
             if ctx.get_parameter_source(name) in (ParameterSource.COMMANDLINE,
                                                   ParameterSource.ENVIRONMENT)}
    settings: dict[str, Any] = {}
    own: dict[str, Any] = {}
    for (param, key), value in defaults.items():
        (own if param in typed else settings)[key] = value
    if config_file is not None:
        settings.update(load_properties(config_file))
    settings.update(parse_kv(properties, f"--{kind}-property"))
    settings.update(own)
    return settings


def parse_kv(items: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{what} must look like key=value, got {item!r}")
        out[key.strip()] = value
    return out


async def wait_or_cancel(coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
    import asyncio

    return await asyncio.wait_for(coro, timeout)
