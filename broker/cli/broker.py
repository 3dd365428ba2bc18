"""``klamm standalone`` and ``klamm broker start``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from .errors import CliError

if TYPE_CHECKING:
    from ..config import BrokerConfig


def build_config(config_file: str | None, overrides: dict[str, Any]) -> tuple[BrokerConfig,
                                                                               frozenset[str]]:
    # Imported here: pydantic costs ~0.1 s, which `klamm --help` should not pay.
    from klamm.protocol.config import ConfigError

    from ..config import BrokerConfig, kafka_aliases, load_properties

    try:
        # the file's listeners/log.dirs are translated before the command line overrides them
        values = kafka_aliases(load_properties(config_file)) if config_file else {}
        values.update(kafka_aliases({k: v for k, v in overrides.items() if v is not None}))
        return BrokerConfig.build(values), frozenset(values)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


def _start(config_file: str | None, listen: str | None, data_dir: str | None,
           broker_id: int | None, overrides: tuple[str, ...],
           zk_listen: str | None = None, zk: str | None = None,
           standalone: bool = False) -> None:
    from klamm.protocol.config import parse_host_port, parse_overrides

    from ..runner import run

    values: dict[str, Any] = {}
    if listen:
        values["host"], values["port"] = parse_host_port(listen)
    if data_dir:
        values["log.dir"] = data_dir
    if broker_id is not None:
        values["broker.id"] = broker_id
    if zk:
        values["zookeeper.connect"] = zk
    values.update(parse_overrides(overrides))
    config, explicit = build_config(config_file, values)
    if standalone and config.zookeeper_connect is not None:
        raise CliError("klamm standalone runs its own coordination service; to join a "
                       "cluster use `klamm broker start --zk HOST:PORT`")
    if not standalone and config.zookeeper_connect is None:
        raise CliError("klamm broker start needs the coordination service: give --zk "
                       "HOST:PORT[/chroot] (zookeeper.connect); for one node with no other "
                       "process, run `klamm standalone`")
    zk_config = None
    if zk_listen:
        from klamm.zk.config import ZkConfig

        host, port = parse_host_port(zk_listen, "--zk-listen")
        zk_config = ZkConfig.build({"host": host, "port": port,
                                    "data_dir": os.path.join(config.log_dir, "zk")})
    run(config, explicit, zk_config)


_listen = click.option("--listen", metavar="HOST:PORT",
                       help="Address to accept clients on (default 127.0.0.1:9092).")
_data_dir = click.option("--data-dir", type=click.Path(file_okay=False),
                         help="Directory for partition logs (log.dir).")
_override = click.option("--override", "overrides", multiple=True, metavar="KEY=VALUE",
                         help="Set any broker config key (repeatable), e.g. "
                              "--override log.segment.bytes=1048576")


@click.command()
@_listen
@_data_dir
@click.option("--zk-listen", metavar="HOST:PORT",
              help="Also run the coordination service in this process, on this address "
                   "(data in DATA_DIR/zk); `klamm zk ls / -z HOST:PORT` then works.")
@_override
def standalone(listen: str | None, data_dir: str | None, zk_listen: str | None,
               overrides: tuple[str, ...]) -> None:
    """Run an all-in-one node: one broker and its coordination service in one process.

    The coordination service listens on a free port of 127.0.0.1 (or --zk-listen); nothing
    else needs to run. The data dir holds it under DATA_DIR/zk.

    \b
    Example:
      klamm standalone --data-dir ./klamm-data --listen 127.0.0.1:9092
      klamm standalone --zk-listen 127.0.0.1:2181
    """
    _start(None, listen, data_dir, None, overrides, zk_listen,
           standalone=True)


@click.group()
def broker() -> None:
    """Run a broker that is one member of a cluster.

    \b
    Example:
      klamm broker start --broker-id 1 --listen 127.0.0.1:9093 --data-dir ./klamm-b1 \\
          --zk 127.0.0.1:2181/klamm
    """


@broker.command("start")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="Kafka-style properties file (key=value per line).")
@click.option("--broker-id", type=int, help="This broker's id (broker.id).")
@_listen
@_data_dir
@click.option("--zk", metavar="HOST:PORT[/CHROOT]",
              help="The coordination service (zookeeper.connect), e.g. 127.0.0.1:2181/klamm.")
@_override
def broker_start(config_file: str | None, broker_id: int | None, listen: str | None,
                 data_dir: str | None, zk: str | None, overrides: tuple[str, ...]) -> None:
    """Start a broker of a cluster; SIGTERM stops it cleanly (leaderships move first).

    \b
    Example:
      klamm zk start --listen 127.0.0.1:2181 --data-dir ./zk
      klamm broker start --broker-id 1 --listen 127.0.0.1:9092 --data-dir ./b1 \\
          --zk 127.0.0.1:2181
      klamm broker start --config server.properties
    """
    _start(config_file, listen, data_dir, broker_id, overrides, zk=zk)
