"""``klamm produce``: one record per stdin line, like kafka-console-producer."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import click

from .common import bootstrap_option, parse_kv, run


@click.command()
@click.argument("topic")
@bootstrap_option
@click.option("--key-separator", metavar="SEP",
              help="Split each line into key SEP value (lines without SEP are an error).")
@click.option("--header", "headers", multiple=True, metavar="KEY=VALUE",
              help="Header added to every record (repeatable).")
@click.option("--acks", type=click.Choice(["0", "1", "all", "-1"]), default="all",
              show_default=True)
@click.option("--partition", type=int, help="Write every record to this partition.")
@click.option("--compression", type=click.Choice(["none", "gzip", "lz4", "zstd"]),
              default="none", show_default=True)
@click.option("--linger-ms", type=int, default=5, show_default=True)
def produce(topic: str, bootstrap: str, key_separator: str | None, headers: tuple[str, ...],
            acks: str, partition: int | None, compression: str, linger_ms: int) -> None:
    """Send one record per line of standard input to TOPIC.

    \b
    Example:
      printf 'k1:hello\\nk2:world\\n' | klamm produce orders --key-separator :
    """
    header_list = [(k, v.encode()) for k, v in parse_kv(headers, "--header").items()]
    run(_produce(topic, bootstrap, key_separator, header_list, acks, partition, compression,
                 linger_ms))


async def stdin_lines() -> AsyncIterator[bytes]:
    """Lines of stdin without their newline; reads in a thread so the loop keeps sending."""
    read = getattr(sys.stdin.buffer, "read1", sys.stdin.buffer.read)
    rest = b""
    while chunk := await asyncio.to_thread(read, 1 << 16):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line.rstrip(b"\r")
    if rest:
        yield rest.rstrip(b"\r")


async def _produce(topic: str, bootstrap: str, key_separator: str | None,
                   headers: list[tuple[str, bytes]], acks: str, partition: int | None,
                   compression: str, linger_ms: int) -> None:
    from klamm.client import Producer

    producer = Producer(bootstrap_servers=bootstrap, acks=-1 if acks == "all" else int(acks),
                        compression_type=compression, linger_ms=linger_ms)
    await producer.start()
    pending: list[Any] = []
    try:
        await producer.partitions_for(topic)
        lineno = 0
        async for text in stdin_lines():
            lineno += 1
            key: bytes | None = None
            if key_separator is not None:
                sep = key_separator.encode()
                if sep not in text:
                    raise click.ClickException(
                        f"line {lineno} has no key separator {key_separator!r}")
                key, text = text.split(sep, 1)
            pending.append(await producer.send(topic, text, key=key, partition=partition,
                                               headers=headers or None))
        for fut in pending:
            await fut
    finally:
        await producer.stop()
