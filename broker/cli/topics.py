"""``klamm topics``: create, list, describe, alter (partitions, configs), delete (output like
kafka-topics)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from .common import bootstrap_option, parse_kv, run

if TYPE_CHECKING:
    from klamm.client.admin import TopicDescription


@click.group()
def topics() -> None:
    """Manage topics.

    \b
    Example:
      klamm topics create orders --partitions 3 --config retention.ms=86400000
      klamm topics describe orders
    """


@topics.command("create")
@click.argument("name")
@bootstrap_option
@click.option("--partitions", type=int, default=-1, help="Partition count (default: broker's "
              "num.partitions).")
@click.option("--replication-factor", type=int, default=-1,
              help="Replicas per partition (default: broker's default.replication.factor).")
@click.option("--replica-assignment", "replica_assignment", metavar="B:B:B,B:B:B",
              help="Explicit replicas per partition, comma-separated partitions, ':' between "
              "broker ids, preferred leader first (e.g. 1:2:3,2:3:1); replaces --partitions "
              "and --replication-factor.")
@click.option("--config", "configs", multiple=True, metavar="KEY=VALUE",
              help="Topic config override (repeatable).")
@click.option("--if-not-exists", is_flag=True, help="Succeed if the topic already exists.")
def create(name: str, bootstrap: str, partitions: int, replication_factor: int,
           replica_assignment: str | None, configs: tuple[str, ...],
           if_not_exists: bool) -> None:
    """Create topic NAME.

    \b
    Example:
      klamm topics create orders --partitions 3 --replication-factor 3
      klamm topics create audit --replica-assignment 1:2:3,2:3:1 --config cleanup.policy=compact
    """
    assignment = None
    if replica_assignment is not None:
        if partitions != -1 or replication_factor != -1:
            raise click.UsageError("--replica-assignment sets the partitions and their "
                                   "replicas; drop --partitions and --replication-factor")
        assignment = _parsed_assignment(replica_assignment)

    async def go() -> None:
        from klamm.client import Admin, NewTopic
        from klamm.client.errors import TopicAlreadyExistsError

        async with Admin(bootstrap_servers=bootstrap) as admin:
            try:
                await admin.create_topics([NewTopic(name, partitions, replication_factor,
                                                    parse_kv(configs, "--config"),
                                                    assignment)])
            except TopicAlreadyExistsError:
                if not if_not_exists:
                    raise
                return
        click.echo(f"Created topic {name}.")
    run(go())


@topics.command("list")
@bootstrap_option
def list_(bootstrap: str) -> None:
    """List topic names, one per line.

    \b
    Example:
      klamm topics list -b localhost:9092
    """
    async def go() -> list[str]:
        from klamm.client import Admin

        async with Admin(bootstrap_servers=bootstrap) as admin:
            return await admin.list_topics()
    for name in run(go()):
        click.echo(name)


@topics.command("describe")
@click.argument("name", required=False)
@bootstrap_option
@click.option("--under-replicated-partitions", "under_replicated", is_flag=True,
              help="Only partitions whose ISR is smaller than their replica list.")
@click.option("--unavailable-partitions", "unavailable", is_flag=True,
              help="Only partitions with no live leader.")
def describe(name: str | None, bootstrap: str, under_replicated: bool,
             unavailable: bool) -> None:
    """Describe NAME (or every topic): partitions, leaders, replicas, ISR, config overrides.

    A partition without a live leader shows "Leader: none". With a filter, only the matching
    partitions are printed, without the topic summary lines (as kafka-topics does).

    \b
    Example:
      klamm topics describe orders
      klamm topics describe --under-replicated-partitions
    """
    async def go() -> list[tuple["TopicDescription", dict[str, str | None]]]:
        from klamm.client import Admin

        async with Admin(bootstrap_servers=bootstrap) as admin:
            out = []
            for desc in await admin.describe_topics([name] if name else None):
                configs = await admin.describe_configs(desc.name)
                out.append((desc, {k: c.value for k, c in configs.items()
                                   if c.source == "topic"}))
            return out
    filtered = under_replicated or unavailable
    for desc, overrides in run(go()):
        if not filtered:
            rf = len(desc.partitions[0].replicas) if desc.partitions else 0
            cfg = ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))
            click.echo(f"Topic: {desc.name}\tPartitionCount: {len(desc.partitions)}\t"
                       f"ReplicationFactor: {rf}\tConfigs: {cfg}")
        for p in desc.partitions:
            offline = p.leader < 0
            if filtered and not ((under_replicated and len(p.isr) < len(p.replicas)) or
                                 (unavailable and offline)):
                continue
            click.echo(f"\tTopic: {desc.name}\tPartition: {p.partition}\t"
                       f"Leader: {'none' if offline else p.leader}\t"
                       f"Replicas: {','.join(map(str, p.replicas))}\t"
                       f"Isr: {','.join(map(str, p.isr))}")


@topics.command("alter")
@click.argument("name")
@bootstrap_option
@click.option("--partitions", type=click.IntRange(min=1), default=None,
              help="Grow the topic to this many partitions. Partitions can be added, never "
              "removed; records with a key may map to another partition afterwards.")
@click.option("--replica-assignment", "replica_assignment", metavar="B:B:B,B:B:B",
              help="With --partitions: the replicas of the new partitions (':' between broker "
              "ids, ',' between partitions). The entries of existing partitions may lead the "
              "list, as kafka-topics takes it; they are skipped.")
@click.option("--config", "configs", multiple=True, metavar="KEY=VALUE",
              help="Set a topic config (repeatable).")
@click.option("--delete-config", "deletes", multiple=True, metavar="KEY",
              help="Remove a topic override, back to the broker default (repeatable).")
def alter(name: str, bootstrap: str, partitions: int | None, replica_assignment: str | None,
          configs: tuple[str, ...], deletes: tuple[str, ...]) -> None:
    """Add partitions to NAME or change its configs.

    \b
    Example:
      klamm topics alter orders --partitions 6
      klamm topics alter orders --config retention.ms=3600000 --delete-config segment.bytes
    """
    changes: dict[str, str | None] = dict(parse_kv(configs, "--config"))
    changes.update({k: None for k in deletes})
    if replica_assignment is not None and partitions is None:
        raise click.UsageError("--replica-assignment places new partitions: give "
                               "--partitions too")
    if not changes and partitions is None:
        raise click.UsageError("nothing to change: give --partitions N, --config KEY=VALUE or "
                               "--delete-config KEY")
    new_replicas = None if replica_assignment is None else _parsed_assignment(replica_assignment)

    async def go() -> None:
        from klamm.client import Admin, NewPartitions

        async with Admin(bootstrap_servers=bootstrap) as admin:
            if partitions is not None:
                [desc] = await admin.describe_topics([name])
                have = len(desc.partitions)
                assignments = None
                if new_replicas is not None:
                    lists = [new_replicas[p] for p in sorted(new_replicas)]
                    if len(lists) == partitions:  # kafka-topics' form: every partition
                        if lists[:have] != [list(p.replicas) for p in desc.partitions]:
                            click.echo(f"warning: --replica-assignment's entries for the "
                                       f"{have} existing partition(s) differ from their "
                                       f"replicas; existing partitions are not moved, the "
                                       f"entries are skipped", err=True)
                        lists = lists[have:]
                    assignments = lists
                await admin.create_partitions({name: NewPartitions(partitions, assignments)})
                click.echo(f"Topic {name} grew from {have} to {partitions} partitions.")
            if changes:
                await admin.alter_configs(name, changes)
                click.echo(f"Updated config of topic {name}.")
    run(go())


def _parsed_assignment(text: str) -> dict[int, list[int]]:
    from klamm.broker.controller.assignment import parse_assignment
    from klamm.protocol.errors import InvalidReplicaAssignmentError

    try:
        return parse_assignment(text)
    except InvalidReplicaAssignmentError as exc:
        raise click.BadParameter(str(exc), param_hint="--replica-assignment") from None


@topics.command("delete")
@click.argument("name")
@bootstrap_option
def delete(name: str, bootstrap: str) -> None:
    """Delete topic NAME and all its data.

    \b
    Example:
      klamm topics delete orders
    """
    async def go() -> None:
        from klamm.client import Admin

        async with Admin(bootstrap_servers=bootstrap) as admin:
            await admin.delete_topics([name])
        click.echo(f"Deleted topic {name}.")
    run(go())
