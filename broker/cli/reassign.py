"""``klamm reassign-partitions``: move partitions to new replicas (kafka-reassign-partitions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from .common import bootstrap_option, run
from .errors import CliError


def parse_reassignment_file(path: str) -> dict[tuple[str, int], list[int]]:
    """Kafka's reassignment JSON: ``{"version": 1, "partitions": [{"topic", "partition",
    "replicas"}]}`` (``log_dirs``, if there, must be all "any": one log dir per broker)."""
    where = f"--reassignment-json-file {path}"
    try:
        doc: Any = json.loads(Path(path).read_text())
    except OSError as exc:
        raise CliError(f"cannot read {where}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CliError(f"{where} is not JSON: {exc}") from None
    entries = doc.get("partitions") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise CliError(f'{where} must hold {{"version": 1, "partitions": [{{"topic": ..., '
                       f'"partition": ..., "replicas": [...]}}, ...]}}')
    out: dict[tuple[str, int], list[int]] = {}
    for i, e in enumerate(entries):
        ok = isinstance(e, dict) and isinstance(e.get("topic"), str) and \
            type(e.get("partition")) is int and isinstance(e.get("replicas"), list) and \
            all(type(b) is int for b in e["replicas"])
        if not ok:
            raise CliError(f"{where}: entry {i} needs a string 'topic', an integer "
                           f"'partition' and a list of broker ids 'replicas'")
        dirs = e.get("log_dirs")
        if dirs is not None and any(d != "any" for d in dirs):
            raise CliError(f"{where}: entry {i} names log dirs {dirs}; moving replicas "
                           f"between the log dirs of one broker is not supported (use "
                           f"\"any\")")
        key = (e["topic"], e["partition"])
        if key in out:
            raise CliError(f"{where}: {key[0]}-{key[1]} is listed twice")
        out[key] = list(e["replicas"])
    return out


def _json(assignment: dict[tuple[str, int], list[int]]) -> str:
    return json.dumps({"version": 1, "partitions": [
        {"topic": t, "partition": p, "replicas": r, "log_dirs": ["any"] * len(r)}
        for (t, p), r in sorted(assignment.items())]}, separators=(",", ":"))


@click.command("reassign-partitions")
@bootstrap_option
@click.option("--reassignment-json-file", "path", required=True, metavar="FILE",
              help='{"version": 1, "partitions": [{"topic": "t", "partition": 0, '
              '"replicas": [2, 3]}]}: the new replicas of each partition, preferred leader '
              'first.')
@click.option("--execute", is_flag=True, help="Start moving the partitions.")
@click.option("--verify", is_flag=True, help="Say which moves are done.")
def reassign_partitions(bootstrap: str, path: str, execute: bool, verify: bool) -> None:
    """Move partitions to new replicas.

    As kafka-reassign-partitions does, from the same JSON file.

    --execute prints the current assignment (keep it to move back) and starts the moves:
    the new replicas copy the partition from its leader, and once they are all in sync the
    leader moves into the new set if it is not in it and the old replicas delete theirs.
    --verify says, per partition, whether its move is done.

    \b
    Example:
      klamm reassign-partitions --reassignment-json-file move.json --execute
      klamm reassign-partitions --reassignment-json-file move.json --verify
    """
    if execute == verify:
        raise click.UsageError("give exactly one of --execute and --verify")
    wanted = parse_reassignment_file(path)

    async def go() -> None:
        from klamm.client import Admin, TopicPartition

        async with Admin(bootstrap_servers=bootstrap) as admin:
            # moves first: one that ends meanwhile is then seen done, not as not moving
            moving = {} if execute else await admin.list_partition_reassignments()
            topics = sorted({t for t, _ in wanted})
            described = {d.name: d for d in await admin.describe_topics(topics)}
            current: dict[tuple[str, int], list[int]] = {}
            for (t, p) in wanted:
                parts = {i.partition: i for i in described[t].partitions}
                if p not in parts:
                    raise CliError(f"{t}-{p} does not exist ({t} has {len(parts)} "
                                   f"partitions)")
                current[t, p] = list(parts[p].replicas)
            if execute:
                click.echo("Current partition replica assignment\n")
                click.echo(_json(current))
                click.echo("\nSave this to use as the --reassignment-json-file option "
                           "during rollback")
                results = await admin.alter_partition_reassignments(
                    {TopicPartition(t, p): r for (t, p), r in wanted.items()})
                started = [f"{tp.topic}-{tp.partition}" for tp, e in sorted(results.items())
                           if e is None]
                if started:
                    click.echo("Successfully started partition reassignments for " +
                               ",".join(started))
                failed = [(tp, e) for tp, e in sorted(results.items()) if e is not None]
                for tp, error in failed:
                    click.echo(f"Error reassigning partition {tp.topic}-{tp.partition}: "
                               f"{error}", err=True)
                if failed:
                    raise CliError(f"{len(failed)} partition(s) could not be reassigned")
                return
            click.echo("Status of partition reassignment:")
            wrong = []
            for (t, p), target in sorted(wanted.items()):
                if TopicPartition(t, p) in moving:
                    click.echo(f"Reassignment of partition {t}-{p} is still in progress.")
                elif current[t, p] == target:
                    click.echo(f"Reassignment of partition {t}-{p} is completed.")
                else:
                    wrong.append(f"{t}-{p}")
                    click.echo(f"Partition {t}-{p} is not moving and has replicas "
                               f"{current[t, p]}, not {target}.")
            if wrong:
                raise CliError(f"{len(wrong)} partition(s) do not have the replicas asked "
                               f"for; run --execute to move them")
    run(go())
