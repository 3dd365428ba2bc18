"""``klamm zk``: run the coordination service, and inspect or edit its tree (like zkCli.sh)."""

from __future__ import annotations

import os
from typing import Any

import click

from .common import run
from .errors import CliError

DEFAULT_ZK = "localhost:2181"


def _zk_option(f: Any) -> Any:
    return click.option("-z", "--zookeeper", "hosts", envvar="KLAMM_ZK", default=DEFAULT_ZK,
                        show_default=True, metavar="HOST:PORT[/CHROOT]",
                        help="Coordination service to talk to (env KLAMM_ZK).")(f)


def _timeout_option(f: Any) -> Any:
    return click.option("--timeout-ms", default=5000, show_default=True,
                        help="Session timeout, also how long to try to connect.")(f)


@click.group("zk")
def zk() -> None:
    """Run or inspect the coordination service (sessions, ephemeral nodes, watches).

    \b
    Example:
      klamm zk start --listen 127.0.0.1:2181 --data-dir ./klamm-zk
      klamm zk create /config/x hello -z 127.0.0.1:2181
      klamm zk ls /
    """


@zk.command("start")
@click.option("--listen", metavar="HOST:PORT", help="Address to accept clients on "
              "(default 127.0.0.1:2181).")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Directory for the transaction log and snapshots (default ./klamm-zk-data).")
@click.option("--override", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Set any coordination config key (repeatable), e.g. "
                   "--override max.session.timeout.ms=30000")
def start(listen: str | None, data_dir: str | None, overrides: tuple[str, ...]) -> None:
    """Run the coordination service in the foreground until SIGINT/SIGTERM.

    \b
    Example:
      klamm zk start --listen 127.0.0.1:2181 --data-dir ./klamm-zk-data
    """
    from klamm.protocol.config import ConfigError
    from klamm.zk.__main__ import build_config
    from klamm.zk.runner import run as run_server

    try:
        config = build_config(listen, data_dir, list(overrides))
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    os.makedirs(config.data_dir, exist_ok=True)
    run_server(config)


async def _with_client(hosts: str, timeout_ms: int, action: Any) -> Any:
    from klamm.zk import ZkClient, ZkError

    try:
        client = ZkClient(hosts, session_timeout_ms=timeout_ms)
        await client.start(timeout=timeout_ms / 1000)
    except ZkError as exc:
        raise CliError(str(exc)) from None
    try:
        return await action(client)
    except ZkError as exc:
        raise CliError(_describe(exc)) from None
    finally:
        await client.close()


# What to do next, per error, in the CLI's own terms (the library's hints speak Python).
_CLI_ADVICE = {
    "NoNodeError": "create it (klamm zk create PATH --makepath) or check the path and chroot",
    "NodeExistsError": "use klamm zk set to change its data",
    "BadVersionError": "read it again (klamm zk get PATH --stat) and pass its current version",
    "NotEmptyError": "pass --recursive to delete the subtree",
}


def _describe(exc: Exception) -> str:
    """One sentence for a coordination error: what happened, then what to do."""
    advice = _CLI_ADVICE.get(type(exc).__name__)
    return f"{exc}; {advice}" if advice else str(exc)


@zk.command("ls")
@click.argument("path", default="/")
@_zk_option
@_timeout_option
def ls(path: str, hosts: str, timeout_ms: int) -> None:
    """List the children of PATH, one per line.

    \b
    Example:
      klamm zk ls /brokers/ids -z 127.0.0.1:2181/klamm
    """
    async def action(c: Any) -> list[str]:
        return list(await c.get_children(path))

    for child in run(_with_client(hosts, timeout_ms, action)):
        click.echo(child)


@zk.command("get")
@click.argument("path")
@click.option("--stat", "show_stat", is_flag=True, help="Also print the node's stat.")
@_zk_option
@_timeout_option
def get(path: str, show_stat: bool, hosts: str, timeout_ms: int) -> None:
    """Print the data of PATH (bytes that are not UTF-8 as \\xNN escapes).

    \b
    Example:
      klamm zk get /controller --stat -z 127.0.0.1:2181/klamm
    """
    async def action(c: Any) -> Any:
        return await c.get(path)

    data, stat = run(_with_client(hosts, timeout_ms, action))
    click.echo(data.decode("utf-8", errors="backslashreplace"))
    if show_stat:
        for name, value in stat._asdict().items():
            click.echo(f"{name} = {value:#x}" if name == "ephemeral_owner" else
                       f"{name} = {value}")


@zk.command("create")
@click.argument("path")
@click.argument("data", default="")
@click.option("--ephemeral", is_flag=True, help="Node vanishes when this command's session "
              "ends (useful only for testing).")
@click.option("--sequential", is_flag=True, help="Append a monotonic 10-digit suffix.")
@click.option("--makepath", "-p", is_flag=True, help="Create missing parents.")
@_zk_option
@_timeout_option
def create(path: str, data: str, ephemeral: bool, sequential: bool, makepath: bool, hosts: str,
           timeout_ms: int) -> None:
    """Create PATH with DATA; prints the created path.

    \b
    Example:
      klamm zk create /config/x hello --makepath
    """
    async def action(c: Any) -> str:
        return str(await c.create(path, data.encode(), ephemeral=ephemeral,
                                  sequential=sequential, makepath=makepath))

    click.echo(run(_with_client(hosts, timeout_ms, action)))


@zk.command("set")
@click.argument("path")
@click.argument("data")
@click.option("--version", type=int, default=-1, help="Only if the node is at this version.")
@_zk_option
@_timeout_option
def set_(path: str, data: str, version: int, hosts: str, timeout_ms: int) -> None:
    """Replace the data of PATH; prints the new version.

    \b
    Example:
      klamm zk set /config/x bye --version 0
    """
    async def action(c: Any) -> Any:
        return await c.set(path, data.encode(), version=version)

    click.echo(f"version = {run(_with_client(hosts, timeout_ms, action)).version}")


set_.name = "set"


@zk.command("delete")
@click.argument("path")
@click.option("--version", type=int, default=-1, help="Only if the node is at this version.")
@click.option("--recursive", "-r", is_flag=True, help="Delete the whole subtree.")
@_zk_option
@_timeout_option
def delete(path: str, version: int, recursive: bool, hosts: str, timeout_ms: int) -> None:
    """Delete PATH.

    \b
    Example:
      klamm zk delete /config --recursive
    """
    async def action(c: Any) -> None:
        await c.delete(path, version=version, recursive=recursive)

    run(_with_client(hosts, timeout_ms, action))
