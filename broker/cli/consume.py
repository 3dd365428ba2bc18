"""``klamm consume``: print records, like kafka-console-consumer."""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import click

from .common import bootstrap_option, client_config_options, client_settings, run


@click.command()
@click.argument("topic")
@bootstrap_option
@click.option("--from-beginning", is_flag=True, help="Start at the earliest offset.")
@click.option("--partition", type=int, help="Read only this partition.")
@click.option("--offset", type=str, metavar="O|earliest|latest",
              help="Start offset (needs --partition).")
@click.option("--max-messages", type=int, help="Exit after this many records.")
@click.option("--timeout-ms", type=click.IntRange(min=-1), help="Exit after this long "
              "without a record (-1: never, as without the option).")
@click.option("--print-key", is_flag=True, help="Print the key before the value.")
@click.option("--key-separator", default="\t", show_default="a tab", metavar="SEP",
              help="Between key and value with --print-key.")
@click.option("--print-offset", is_flag=True, help="Print partition:offset first.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True,
              help="text: keys and values as UTF-8, other bytes shown as \\xNN escapes (which "
                   "look like typed text); json: one object per line with every field, bytes "
                   "that are not UTF-8 as {\"base64\": ...}, so it round-trips.")
@click.option("--group", "group_id", help="Consumer group (arrives with consumer groups).")
@client_config_options("consumer")
def consume(topic: str, bootstrap: str, from_beginning: bool, partition: int | None,
            offset: str | None, max_messages: int | None, timeout_ms: int | None,
            print_key: bool, key_separator: str, print_offset: bool, fmt: str,
            group_id: str | None, config_file: str | None, properties: tuple[str, ...]) -> None:
    """Print records of TOPIC, one per line.

    \b
    Example:
      klamm consume orders --from-beginning --max-messages 10 --print-key
      klamm consume orders --partition 0 --offset 42 --format json --timeout-ms 2000
    """
    if offset is not None and partition is None:
        raise click.UsageError("--offset needs --partition")
    if group_id is not None:
        raise click.UsageError("--group needs consumer groups, which this broker version "
                               "does not have yet; use --partition/--offset or "
                               "--from-beginning")
    if timeout_ms == 0:
        raise click.BadParameter("must be -1 (never) or at least 1 ms; 0 would exit before "
                                 "the first fetch could answer", param_hint="--timeout-ms")
    settings = client_settings({
        ("bootstrap", "bootstrap.servers"): bootstrap,
        ("from_beginning", "auto.offset.reset"): "earliest" if from_beginning else "latest"},
        config_file, properties, "consumer")
    run(_consume(topic, settings, from_beginning, partition, offset, max_messages,
                 timeout_ms, print_key, key_separator, print_offset, fmt))


def _text(data: bytes | None) -> str:
    return "null" if data is None else data.decode("utf-8", errors="backslashreplace")


def _json_value(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}


async def _consume(topic: str, settings: dict[str, Any], from_beginning: bool,
                   partition: int | None,
                   offset: str | None, max_messages: int | None, timeout_ms: int | None,
                   print_key: bool, key_separator: str, print_offset: bool, fmt: str) -> None:
    from klamm.client import Consumer, TopicPartition

    consumer = Consumer(config=settings)
    await consumer.start()
    try:
        parts = [partition] if partition is not None else await _partitions(consumer, topic)
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        if offset in (None, "latest") and not from_beginning:
            await consumer.seek_to_end(*tps)
        elif offset == "earliest" or (offset is None and from_beginning):
            await consumer.seek_to_beginning(*tps)
        else:
            assert offset is not None
            if not offset.isdigit():
                raise click.BadParameter(f"--offset must be a number, earliest or latest, "
                                         f"got {offset!r}")
            consumer.seek(tps[0], int(offset))
        seen = 0
        out = sys.stdout
        idle_ms = None if timeout_ms in (None, -1) else timeout_ms
        while max_messages is None or seen < max_messages:
            wait = idle_ms if idle_ms is not None else 1000
            batch = await consumer.getmany(timeout_ms=wait)
            if not batch:
                if idle_ms is not None:
                    break
                continue
            for records in batch.values():
                for rec in records:
                    if max_messages is not None and seen >= max_messages:
                        break
                    seen += 1
                    if fmt == "json":
                        out.write(json.dumps({
                            "topic": rec.topic, "partition": rec.partition,
                            "offset": rec.offset, "timestamp": rec.timestamp,
                            "key": _json_value(rec.key), "value": _json_value(rec.value),
                            "headers": {k: _json_value(v) for k, v in rec.headers}}) + "\n")
                        continue
                    line = ""
                    if print_offset:
                        line += f"{rec.partition}:{rec.offset}{key_separator}"
                    if print_key:
                        line += _text(rec.key) + key_separator
                    out.write(line + _text(rec.value) + "\n")
            out.flush()
    finally:
        await consumer.stop()


async def _partitions(consumer: Any, topic: str) -> list[int]:
    parts = await consumer.partitions_for_topic(topic)
    if not parts:
        raise click.ClickException(
            f"topic {topic!r} does not exist; create it with: klamm topics create {topic} "
            f"--partitions N")
    return sorted(parts)
