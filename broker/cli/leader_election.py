"""``klamm leader-election``: preferred or unclean elections on demand (kafka-leader-election)."""

from __future__ import annotations

import click

from .common import bootstrap_option, run
from .errors import CliError


@click.command("leader-election")
@bootstrap_option
@click.option("--election-type", type=click.Choice(["preferred", "unclean"],
                                                   case_sensitive=False), required=True,
              help="preferred: back to each partition's first replica when it is in sync. "
              "unclean: a partition with no live leader gets any live replica, and records "
              "only the dead replicas had are lost.")
@click.option("--topic", help="Only this topic's partitions.")
@click.option("--partition", type=click.IntRange(min=0), help="With --topic: only this one.")
@click.option("--all-topic-partitions", "every", is_flag=True,
              help="Every partition of every topic.")
def leader_election(bootstrap: str, election_type: str, topic: str | None,
                    partition: int | None, every: bool) -> None:
    """Run preferred or unclean leader elections.

    As kafka-leader-election does: for the partitions named, or every one.

    Prints the partitions elected, those whose leader was already the one the election
    chooses, and one line per partition it could not elect (then it exits 1).

    \b
    Example:
      klamm leader-election --election-type preferred --all-topic-partitions
      klamm leader-election --election-type unclean --topic orders --partition 0
    """
    if every == (topic is not None):
        raise click.UsageError("give either --topic TOPIC [--partition P] or "
                               "--all-topic-partitions")
    if partition is not None and topic is None:
        raise click.UsageError("--partition needs --topic")
    kind = election_type.lower()

    async def go() -> dict[str, list[str]]:
        from klamm.client import Admin, TopicPartition
        from klamm.client.errors import ElectionNotNeededError

        async with Admin(bootstrap_servers=bootstrap) as admin:
            wanted = None
            if topic is not None:
                if partition is not None:
                    wanted = [TopicPartition(topic, partition)]
                else:
                    [desc] = await admin.describe_topics([topic])
                    wanted = [TopicPartition(topic, p.partition) for p in desc.partitions]
            results = await admin.elect_leaders(kind, wanted)
        out: dict[str, list[str]] = {"done": [], "not needed": [], "failed": []}
        for tp, error in sorted(results.items()):
            name = f"{tp.topic}-{tp.partition}"
            if error is None:
                out["done"].append(name)
            elif isinstance(error, ElectionNotNeededError):
                out["not needed"].append(name)
            else:
                out["failed"].append(f"{name}: {error}")
        return out
    found = run(go())
    label = kind.upper()
    if found["done"]:
        click.echo(f"Successfully completed leader election ({label}) for partitions "
                   f"{', '.join(found['done'])}")
    if found["not needed"]:
        click.echo(f"Valid replica already elected for partitions "
                   f"{', '.join(found['not needed'])}")
    if not any(found.values()):
        click.echo("No partition needed an election.")
    if found["failed"]:
        for line in found["failed"]:
            click.echo(f"Error completing leader election ({label}) for partition {line}",
                       err=True)
        raise CliError(f"{len(found['failed'])} partition(s) could not be elected")
