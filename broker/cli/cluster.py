"""``klamm cluster describe``: the cluster id, the controller and its epoch, every broker."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .common import bootstrap_option, run

if TYPE_CHECKING:
    from klamm.client.admin import ClusterDescription


@click.group()
def cluster() -> None:
    """Inspect the cluster.

    \b
    Example:
      klamm cluster describe -b localhost:9092
    """


@cluster.command("describe")
@bootstrap_option
def describe(bootstrap: str) -> None:
    """Print the cluster id, the controller id and epoch, and one line per broker.

    Brokers are the live ones and the dead ones that still hold replicas; a dead broker the
    answering broker never saw live shows host and port as "unknown".

    \b
    Example:
      klamm cluster describe -b localhost:9092
    \b
    Output:
      Cluster: 9fj3kQ...\tController: 2\tControllerEpoch: 5
      \tBroker: 1\tHost: 10.0.0.1\tPort: 9092\tRack: r1\tState: live
    """
    async def go() -> "ClusterDescription":
        from klamm.client import Admin

        async with Admin(bootstrap_servers=bootstrap) as admin:
            return await admin.describe_cluster()
    desc = run(go())
    controller = desc.controller_id if desc.controller_id >= 0 else "none"
    click.echo(f"Cluster: {desc.cluster_id}\tController: {controller}\t"
               f"ControllerEpoch: {desc.controller_epoch}")
    for b in desc.brokers:
        known = b.port >= 0
        click.echo(f"\tBroker: {b.node_id}\tHost: {b.host if known else 'unknown'}\t"
                   f"Port: {b.port if known else 'unknown'}\tRack: {b.rack or 'none'}\t"
                   f"State: {'live' if b.live else 'dead'}")
