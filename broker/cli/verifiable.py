"""``klamm verifiable-producer`` and ``klamm verifiable-consumer``: the loss checkers.

They print one JSON object per line in the shapes of Kafka's VerifiableProducer and
VerifiableConsumer (``name`` says what happened), so a test or an operator can count what was
acknowledged against what is read: every ``producer_send_success`` names the value and where it
was stored; ``records_consumed`` gives per-partition offset ranges and, with ``--verbose``,
``record_data`` lines give every record. Values are increasing integers as text (with an
optional prefix). SIGTERM or SIGINT ends either tool cleanly: the producer waits for what it
sent to be acknowledged or failed, then both print ``shutdown_complete`` (the producer then
``tool_data`` with its counts).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import sys
import time
from typing import Any

import click

from .common import bootstrap_option, parse_kv, run, stdout_closed


class _Output:
    """Where the JSON lines go; once its reader is gone (``| head``), the tool stops."""

    closed = False
    on_closed: Any = None


def _emit(name: str, **fields: Any) -> None:
    if _Output.closed:
        return
    try:
        sys.stdout.write(json.dumps({"timestamp": int(time.time() * 1000), "name": name,
                                     **fields}) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        _Output.closed = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit stays quiet
        if _Output.on_closed is not None:
            _Output.on_closed()


def _stop_on_signals(stop: asyncio.Event, abandon: Any = None) -> None:
    """The first SIGTERM/SIGINT stops cleanly (what was sent is waited for); a second one
    calls ``abandon``: stop waiting, and report what is unacknowledged as failed."""
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set() and abandon is not None:
            abandon()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    _Output.on_closed = stop.set


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="backslashreplace")


@click.command("verifiable-producer")
@click.argument("topic")
@bootstrap_option
@click.option("--max-messages", type=int, default=-1, show_default=True,
              help="Values to send (-1: until SIGTERM).")
@click.option("--throughput", type=float, default=-1, show_default=True,
              help="Values per second (-1: as fast as acknowledgements allow).")
@click.option("--acks", type=click.Choice(["0", "1", "all", "-1"]), default="all",
              show_default=True, help="Acknowledgements each send waits for.")
@click.option("--value-prefix", type=str, help="Prefix every value with 'PREFIX.'.")
@click.option("--repeating-keys", type=int,
              help="Key values 0..N-1 in turn (default: no key).")
@click.option("--producer-property", "properties", multiple=True, metavar="KEY=VALUE",
              help="Any producer setting (repeatable), e.g. retries=0.")
def verifiable_producer(topic: str, bootstrap: str, max_messages: int, throughput: float,
                        acks: str, value_prefix: str | None, repeating_keys: int | None,
                        properties: tuple[str, ...]) -> None:
    """Send increasing integers to TOPIC and print every acknowledgement as JSON.

    \b
    Example:
      klamm verifiable-producer orders --max-messages 10000 --throughput 1000 --acks all
    """
    config: dict[str, Any] = {"acks": acks}
    config.update(parse_kv(properties, "--producer-property"))
    run(_produce(topic, bootstrap, max_messages, throughput, value_prefix, repeating_keys,
                 config))


async def _produce(topic: str, bootstrap: str, max_messages: int, throughput: float,
                   value_prefix: str | None, repeating_keys: int | None,
                   config: dict[str, Any]) -> None:
    from klamm.client import Producer

    stop = asyncio.Event()
    producer = Producer(config, bootstrap_servers=bootstrap)
    abandoned = asyncio.Event()
    _stop_on_signals(stop, abandoned.set)
    await producer.start()
    counts = {"sent": 0, "acked": 0, "failed": 0}
    outstanding: set[Any] = set()
    all_done = asyncio.Event()
    all_done.set()
    started = time.monotonic()

    def on_done(key: str | None, value: str, fut: Any) -> None:
        outstanding.discard(fut)
        if not outstanding:
            all_done.set()
        exc = fut.exception()
        if exc is None:
            md = fut.result()
            counts["acked"] += 1
            _emit("producer_send_success", key=key, value=value, topic=md.topic,
                  partition=md.partition, offset=md.offset)
        else:
            counts["failed"] += 1
            _emit("producer_send_error", exception=type(exc).__name__, message=str(exc),
                  topic=topic, key=key, value=value)

    async def send_all() -> None:
        await producer.partitions_for(topic)
        _emit("startup_complete")
        i = 0
        while (max_messages < 0 or i < max_messages) and not stop.is_set():
            if throughput > 0:
                ahead = started + i / throughput - time.monotonic()
                if ahead > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), ahead)
                        break
                    except TimeoutError:
                        pass
            key = str(i % repeating_keys) if repeating_keys else None
            value = f"{value_prefix}.{i}" if value_prefix else str(i)
            fut = await producer.send(topic, value.encode(),
                                      key=key.encode() if key is not None else None)
            counts["sent"] += 1
            outstanding.add(fut)
            all_done.clear()
            fut.add_done_callback(functools.partial(on_done, key, value))
            i += 1
        if outstanding and stop.is_set() and not _Output.closed:
            print(f"waiting for {len(outstanding)} unacknowledged record(s); interrupt again "
                  f"to stop at once", file=sys.stderr, flush=True)
        await producer.flush()
        await all_done.wait()

    try:
        sending = asyncio.ensure_future(send_all())
        give_up = asyncio.ensure_future(abandoned.wait())
        await asyncio.wait({sending, give_up}, return_when=asyncio.FIRST_COMPLETED)
        give_up.cancel()
        if not sending.done():  # interrupted twice: what is unanswered fails, at once
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
        elif sending.exception() is not None:
            raise sending.exception()  # type: ignore[misc]
    finally:
        await producer.stop(timeout=0 if abandoned.is_set() else None)
    elapsed = max(time.monotonic() - started, 1e-9)
    if _Output.closed:
        stdout_closed()
    _emit("shutdown_complete")
    _emit("tool_data", sent=counts["sent"], acked=counts["acked"], failed=counts["failed"],
          target_throughput=throughput, avg_throughput=round(counts["sent"] / elapsed, 1))


@click.command("verifiable-consumer")
@click.argument("topic")
@bootstrap_option
@click.option("--max-messages", type=int, default=-1, show_default=True,
              help="Exit after this many records (-1: until SIGTERM or --timeout-ms).")
@click.option("--timeout-ms", type=int, help="Exit after this long without a record.")
@click.option("--reset-policy", type=click.Choice(["earliest", "latest"]), default="earliest",
              show_default=True, help="Where to start each partition.")
@click.option("--verbose", is_flag=True, help="Print a record_data line for every record.")
@click.option("--consumer-property", "properties", multiple=True, metavar="KEY=VALUE",
              help="Any consumer setting (repeatable).")
def verifiable_consumer(topic: str, bootstrap: str, max_messages: int, timeout_ms: int | None,
                        reset_policy: str, verbose: bool, properties: tuple[str, ...]) -> None:
    """Read every partition of TOPIC and print what was consumed as JSON.

    \b
    Example:
      klamm verifiable-consumer orders --timeout-ms 5000 --verbose
    """
    config: dict[str, Any] = {"auto_offset_reset": reset_policy}
    config.update(parse_kv(properties, "--consumer-property"))
    run(_consume(topic, bootstrap, max_messages, timeout_ms, verbose, config))


async def _consume(topic: str, bootstrap: str, max_messages: int, timeout_ms: int | None,
                   verbose: bool, config: dict[str, Any]) -> None:
    from klamm.client import Consumer, TopicPartition

    stop = asyncio.Event()
    _stop_on_signals(stop)
    consumer = Consumer(config=config, bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        parts = sorted(await consumer.partitions_for_topic(topic) or ())
        if not parts:
            raise click.ClickException(f"topic {topic!r} has no partitions (does it exist?)")
        tps = [TopicPartition(topic, p) for p in parts]
        consumer.assign(tps)
        _emit("startup_complete")
        _emit("partitions_assigned", partitions=[{"topic": topic, "partition": p}
                                                 for p in parts])
        total = 0
        last = time.monotonic()
        while not stop.is_set() and (max_messages < 0 or total < max_messages):
            wait = 1000 if timeout_ms is None else min(timeout_ms, 1000)
            poll = asyncio.ensure_future(consumer.getmany(timeout_ms=wait))
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({poll, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if not poll.done():
                poll.cancel()
                break
            batch = poll.result()
            if not batch:
                if timeout_ms is not None and (time.monotonic() - last) * 1000 >= timeout_ms:
                    break
                continue
            last = time.monotonic()
            summary = []
            count = 0
            for tp, records in sorted(batch.items()):
                if max_messages >= 0:
                    records = records[:max(max_messages - total - count, 0)]
                if not records:
                    continue
                count += len(records)
                summary.append({"topic": tp.topic, "partition": tp.partition,
                                "count": len(records), "minOffset": records[0].offset,
                                "maxOffset": records[-1].offset})
                if verbose:
                    for r in records:
                        _emit("record_data", key=_text(r.key), value=_text(r.value),
                              topic=r.topic, partition=r.partition, offset=r.offset)
            total += count
            if count:
                _emit("records_consumed", count=count, partitions=summary)
    finally:
        await consumer.stop()
    _emit("shutdown_complete")
