"""``klamm produce``: one record per stdin line, like kafka-console-producer."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any

import click

from .common import bootstrap_option, client_config_options, client_settings, parse_kv, run
from .errors import CliError, describe


@click.command()
@click.argument("topic")
@bootstrap_option
@click.option("--key-separator", metavar="SEP",
              help="Split each line into key SEP value (lines without SEP are an error).")
@click.option("--header", "headers", multiple=True, metavar="KEY=VALUE",
              help="Header added to every record (repeatable).")
@click.option("--acks", type=click.Choice(["0", "1", "all", "-1"]), default="all",
              show_default=True,
              help="Acknowledgements a record needs (acks): all = every in-sync replica.")
@click.option("--partition", type=int, help="Write every record to this partition.")
@click.option("--compression", type=click.Choice(["none", "gzip", "lz4", "zstd"]),
              default="none", show_default=True, help="Batch compression (compression.type).")
@click.option("--linger-ms", type=int, default=5, show_default=True,
              help="How long a batch waits for more records (linger.ms).")
@client_config_options("producer")
def produce(topic: str, bootstrap: str, key_separator: str | None, headers: tuple[str, ...],
            acks: str, partition: int | None, compression: str, linger_ms: int,
            config_file: str | None, properties: tuple[str, ...]) -> None:
    """Send one record per line of standard input to TOPIC.

    Ctrl-C stops at once: records already acknowledged stay, the rest are counted as not
    stored (exit 130). When a record fails, the last line says how many were sent,
    acknowledged and failed (exit 1).

    \b
    Example:
      printf 'k1:hello\\nk2:world\\n' | klamm produce orders --key-separator :
      klamm produce orders --producer-property max.request.size=4194304 < big-lines.txt
    """
    header_list = [(k, v.encode()) for k, v in parse_kv(headers, "--header").items()]
    settings = client_settings({
        ("bootstrap", "bootstrap.servers"): bootstrap,
        ("acks", "acks"): -1 if acks == "all" else int(acks),
        ("compression", "compression.type"): compression,
        ("linger_ms", "linger.ms"): linger_ms}, config_file, properties, "producer")
    run(_produce(topic, settings, key_separator, header_list, partition))


async def stdin_lines() -> AsyncIterator[bytes]:
    """Lines of stdin without their newline. A daemon thread reads, so Ctrl-C never waits for
    a read that may not return (a terminal, a pipe whose writer stays open); a bounded queue
    keeps it from reading far ahead of the sends."""
    loop = asyncio.get_running_loop()
    chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=16)

    def put(chunk: bytes | None) -> None:
        asyncio.run_coroutine_threadsafe(chunks.put(chunk), loop).result()

    def reader() -> None:
        # The raw descriptor, not sys.stdin: a daemon thread blocked inside the buffered
        # reader would hold its lock while the interpreter shuts down, and abort it.
        fd = sys.stdin.fileno()
        try:
            while chunk := os.read(fd, 1 << 16):
                put(chunk)
            put(None)
        except (RuntimeError, OSError, ValueError):  # the loop is gone, or stdin closed
            pass

    threading.Thread(target=reader, name="stdin-reader", daemon=True).start()
    rest = b""
    while (chunk := await chunks.get()) is not None:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line.rstrip(b"\r")
    if rest:
        yield rest.rstrip(b"\r")


class Tally:
    """What happened to the records read: acknowledged, failed (with the last error), or
    still unanswered."""

    def __init__(self) -> None:
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.last_error: BaseException | None = None

    def track(self, fut: Any) -> None:
        self.sent += 1
        fut.add_done_callback(self._done)

    def _done(self, fut: Any) -> None:
        exc = fut.exception()
        if exc is None:
            self.acked += 1
        else:
            self.failed += 1
            self.last_error = exc

    def summary(self) -> str:
        line = f"sent {self.sent}, acknowledged {self.acked}, failed {self.failed}"
        if self.last_error is not None:
            line += f": {describe(self.last_error)}"
        return line


async def _produce(topic: str, settings: dict[str, Any], key_separator: str | None,
                   headers: list[tuple[str, bytes]], partition: int | None) -> None:
    """Records already acknowledged stay; on Ctrl-C the rest are reported as not stored
    (exit 130), on failures the summary names the last error (exit 1)."""
    from klamm.client import Producer
    from klamm.client.errors import MessageSizeTooLargeError

    producer = Producer(settings)
    await producer.start()
    tally = Tally()
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
            try:
                fut = await producer.send(topic, text, key=key, partition=partition,
                                          headers=headers or None)
            except MessageSizeTooLargeError as exc:
                raise CliError(f"line {lineno}: {exc}; raise the limit with --producer-property "
                               f"max.request.size=BYTES") from None
            tally.track(fut)
            pending.append(fut)
        if pending:
            await asyncio.wait([asyncio.ensure_future(_settled(f)) for f in pending])
    except asyncio.CancelledError:  # Ctrl-C (SIGINT cancels the main task)
        await producer.stop(timeout=0)
        await asyncio.sleep(0)  # the futures failed by the stop report to the tally
        unsure = tally.sent - tally.acked
        click.echo(f"interrupted: {tally.summary()}" +
                   (f"; {unsure} record(s) not acknowledged may not be stored" if unsure
                    else ""), err=True)
        sys.exit(130)
    except BaseException:  # a bad line: what was read before it is still delivered
        await producer.stop()
        raise
    await producer.stop()
    if tally.failed:
        raise CliError(tally.summary())


async def _settled(fut: Any) -> None:
    try:
        await fut
    except Exception:
        pass  # counted by the tally
