"""``klamm perf``: throughput and latency tools shaped like kafka-producer-perf-test.

Latency of ``perf produce`` is send() to acknowledgement, sampled on one record in
``LATENCY_SAMPLE`` (a callback per record would measure the callback, not the broker);
``perf e2e`` measures send() to the consumer receiving the record, for every record.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import struct
import time
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import click

from .common import client_config_options, client_settings, bootstrap_option, run
from .errors import CliError

_VALUE = itemgetter(6)  # ConsumerRecord.value


def freeze_startup_objects() -> None:
    """Take what exists once the client is up (modules, click, pydantic models) out of the
    collector's view, as a long-running application would after its imports: full
    collections then scan only what the workload allocates. At 100-byte records this is
    ~15% of producer time; records themselves are untouched."""
    gc.freeze()

LATENCY_SAMPLE = 64
PROGRESS_SECONDS = 5.0


@dataclass
class Stats:
    """Counts and latency samples of one run; prints progress like Kafka's perf tools."""

    record_size: int
    started: float = field(default_factory=time.perf_counter)
    records: int = 0
    bytes: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    _window_start: float = field(default_factory=time.perf_counter)
    _window_records: int = 0

    def add(self, records: int, nbytes: int) -> None:
        self.records += records
        self.bytes += nbytes
        self._window_records += records

    def progress(self, verb: str) -> None:
        now = time.perf_counter()
        span = now - self._window_start
        if span < PROGRESS_SECONDS:
            return
        rate = self._window_records / span
        lat = self.latencies_ms[-1000:]
        extra = (f", {sum(lat) / len(lat):.1f} ms avg latency, {max(lat):.1f} ms max latency"
                 if lat else "")
        click.echo(f"{self._window_records} records {verb}, {rate:,.1f} records/sec "
                   f"({rate * self.record_size / 1e6:.2f} MB/sec){extra}.", err=True)
        self._window_start = now
        self._window_records = 0

    def summary(self) -> dict[str, Any]:
        seconds = max(time.perf_counter() - self.started, 1e-9)
        lat = sorted(self.latencies_ms)

        def pct(q: float) -> float:
            return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0.0

        return {"records": self.records, "seconds": round(seconds, 3),
                "records_per_sec": self.records / seconds,
                "mb_per_sec": self.bytes / seconds / 1e6,
                "latency_ms_avg": sum(lat) / len(lat) if lat else 0.0,
                "latency_ms_p50": pct(0.50), "latency_ms_p99": pct(0.99),
                "latency_ms_p999": pct(0.999), "latency_ms_max": lat[-1] if lat else 0.0}


def report(result: dict[str, Any], as_json: bool, verb: str) -> None:
    if as_json:
        click.echo(json.dumps(result))
        return
    if "acknowledged" not in result:
        counted = ""
    elif result["acknowledged"] is None:
        counted = f" (acks=0: none acknowledged, {result['failed']} failed to be written)"
    else:
        counted = f" ({result['acknowledged']} acknowledged, {result['failed']} failed)"
    line = (f"{result['records']} records {verb}{counted}, {result['records_per_sec']:,.1f} "
            f"records/sec ({result['mb_per_sec']:.2f} MB/sec)")
    if not result["latency_ms_max"]:
        click.echo(line + ".")
        return
    click.echo(f"{line}, "
               f"{result['latency_ms_avg']:.2f} ms avg latency, "
               f"{result['latency_ms_max']:.2f} ms max latency, "
               f"{result['latency_ms_p50']:.2f} ms 50th, {result['latency_ms_p99']:.2f} ms 99th, "
               f"{result['latency_ms_p999']:.2f} ms 99.9th.")


class Throttle:
    """Paces a loop to ``per_second`` iterations (-1: unlimited), sleeping only when ahead."""

    def __init__(self, per_second: float) -> None:
        self.per_second = per_second
        self.start = time.perf_counter()

    async def pace(self, done: int) -> None:
        if self.per_second <= 0:
            return
        ahead = done / self.per_second - (time.perf_counter() - self.start)
        if ahead > 0.0005:
            await asyncio.sleep(ahead)


@click.group()
def perf() -> None:
    """Performance tools: producer throughput, consumer throughput, end-to-end latency.

    \b
    Example:
      klamm perf produce perf-test --num-records 1000000 --record-size 100
      klamm perf consume perf-test --num-records 1000000
      klamm perf e2e perf-lat --num-records 2000 --throughput 1000
    """


@perf.command("produce")
@click.argument("topic")
@bootstrap_option
@click.option("--num-records", type=click.IntRange(min=1), required=True)
@click.option("--record-size", type=int, default=100, show_default=True)
@click.option("--throughput", type=float, default=-1, show_default=True,
              help="Records/s to aim for; -1 for as fast as possible.")
@click.option("--acks", type=click.Choice(["0", "1", "all", "-1"]), default="1",
              show_default=True,
              help="Acknowledgements per record (acks); 1 here, as kafka-producer-perf-test "
                   "runs by default, while klamm produce defaults to all.")
@click.option("--batch-size", type=int, default=65536, show_default=True,
              help="Bytes per batch (batch.size).")
@click.option("--linger-ms", type=int, default=5, show_default=True,
              help="How long a batch waits for more records (linger.ms).")
@click.option("--compression", type=click.Choice(["none", "gzip", "lz4", "zstd"]),
              default="none", show_default=True, help="Batch compression (compression.type).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end.")
@client_config_options("producer")
def perf_produce(topic: str, bootstrap: str, num_records: int, record_size: int,
                 throughput: float, acks: str, batch_size: int, linger_ms: int,
                 compression: str, as_json: bool, config_file: str | None,
                 properties: tuple[str, ...]) -> None:
    """Producer throughput and latency, like kafka-producer-perf-test.

    \b
    Example:
      klamm perf produce bench --num-records 1000000 --record-size 100 --acks 1
      klamm perf produce bench --num-records 100000 --producer-property linger.ms=20
    """
    settings = client_settings({
        ("bootstrap", "bootstrap.servers"): bootstrap,
        ("acks", "acks"): -1 if acks == "all" else int(acks),
        ("batch_size", "batch.size"): batch_size,
        ("linger_ms", "linger.ms"): linger_ms,
        ("compression", "compression.type"): compression,
        ("batch_size", "max.request.size"): max(1 << 20, batch_size * 4)},
        config_file, properties, "producer")
    result = run(_perf_produce(topic, settings, num_records, record_size, throughput))
    report(result, as_json, "sent")
    if result["failed"]:
        raise CliError(f"{result['failed']} of {result['records']} records failed "
                       f"({result['acknowledged']} acknowledged): {result['last_error']}")


async def _perf_produce(topic: str, settings: dict[str, Any], num_records: int,
                        record_size: int, throughput: float) -> dict[str, Any]:
    from klamm.client import Producer

    payload = os.urandom(record_size)
    stats = Stats(record_size)
    throttle = Throttle(throughput)
    async with Producer(settings) as producer:
        acks = producer.config.acks
        await producer.partitions_for(topic)
        freeze_startup_objects()
        perf_counter = time.perf_counter
        send = producer.send
        latencies = stats.latencies_ms
        stats.started = perf_counter()

        errors: list[BaseException] = []

        def sampled(sent_at: float) -> Any:
            def done(fut: Any) -> None:
                exc = fut.exception()
                if exc is None:
                    latencies.append((perf_counter() - sent_at) * 1000)
                elif not errors:
                    errors.append(exc)
            return done

        last: Any = None
        for i in range(num_records):
            last = await send(topic, payload)
            if i % LATENCY_SAMPLE == 0:
                last.add_done_callback(sampled(perf_counter()))
                stats.add(LATENCY_SAMPLE, LATENCY_SAMPLE * record_size)
                stats.progress("sent")
                await throttle.pace(i)
        await producer.flush()
        stats.records = num_records
        stats.bytes = num_records * record_size
        counts = producer.metrics()  # every record is answered once flush returns
        last_error = (errors[0] if errors else
                      last.exception() if last is not None else None)
    summary = stats.summary()
    # acks=0: nothing is acknowledged; the count is of records written to the socket
    summary["acknowledged"] = counts["record_send_total"] if acks != 0 else None
    summary["failed"] = counts["record_error_total"]
    summary["last_error"] = (str(last_error) if last_error else "see the broker log") \
        if summary["failed"] else None
    return summary


@perf.command("consume")
@click.argument("topic")
@bootstrap_option
@click.option("--num-records", type=click.IntRange(min=1), required=True)
@click.option("--fetch-max-bytes", type=int, default=50 * 1024 * 1024, show_default=True)
@click.option("--max-partition-fetch-bytes", type=int, default=8 * 1024 * 1024,
              show_default=True)
@click.option("--max-poll-records", type=click.IntRange(min=1), default=500, show_default=True,
              help="Records per getmany(). Small polls are faster: their records are freed "
                   "while still in the CPU cache and before the garbage collector runs.")
@click.option("--timeout-ms", type=int, default=10_000, show_default=True,
              help="Give up after this long without a record.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end.")
def perf_consume(topic: str, bootstrap: str, num_records: int, fetch_max_bytes: int,
                 max_partition_fetch_bytes: int, max_poll_records: int, timeout_ms: int,
                 as_json: bool) -> None:
    """Consumer throughput from the start of every partition of TOPIC.

    \b
    Example:
      klamm perf consume bench --num-records 1000000
    """
    result = run(_perf_consume(topic, bootstrap, num_records, fetch_max_bytes,
                               max_partition_fetch_bytes, max_poll_records, timeout_ms))
    report(result, as_json, "consumed")


async def _perf_consume(topic: str, bootstrap: str, num_records: int, fetch_max_bytes: int,
                        max_partition_fetch_bytes: int, max_poll_records: int,
                        timeout_ms: int) -> dict[str, Any]:
    from klamm.client import Consumer, TopicPartition

    async with Consumer(bootstrap_servers=bootstrap, fetch_max_bytes=fetch_max_bytes,
                        max_partition_fetch_bytes=max_partition_fetch_bytes,
                        max_poll_records=max_poll_records) as consumer:
        parts = await consumer.partitions_for_topic(topic)
        if not parts:
            raise click.ClickException(f"topic {topic!r} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        freeze_startup_objects()
        await consumer.seek_to_beginning(*tps)
        stats = Stats(0)
        while stats.records < num_records:
            batch = await consumer.getmany(timeout_ms=timeout_ms)
            if not batch:
                raise click.ClickException(
                    f"no record for {timeout_ms} ms after {stats.records} of {num_records}; "
                    f"does the topic hold that many?")
            for records in batch.values():
                # Sum value sizes with C-level iteration: a Python loop here costs more than
                # the consumer itself at 100-byte records.
                stats.add(len(records), sum(map(len, filter(None, map(_VALUE, records)))))
            stats.record_size = stats.bytes // max(stats.records, 1)
            stats.progress("consumed")
    return stats.summary()


@perf.command("e2e")
@click.argument("topic")
@bootstrap_option
@click.option("--num-records", type=click.IntRange(min=1), required=True)
@click.option("--throughput", type=float, default=1000, show_default=True,
              help="Records/s to send.")
@click.option("--record-size", type=int, default=100, show_default=True)
@click.option("--acks", type=click.Choice(["0", "1", "all", "-1"]), default="1",
              show_default=True,
              help="Acknowledgements per record (acks); 1 here, as kafka-producer-perf-test "
                   "runs by default, while klamm produce defaults to all.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end.")
def perf_e2e(topic: str, bootstrap: str, num_records: int, throughput: float,
             record_size: int, acks: str, as_json: bool) -> None:
    """End-to-end latency: time from send() until a consumer holds the record.

    \b
    Example:
      klamm perf e2e latency-test --num-records 10000 --throughput 1000
    """
    result = run(_perf_e2e(topic, bootstrap, num_records, throughput, max(record_size, 8),
                           -1 if acks == "all" else int(acks)))
    report(result, as_json, "delivered")


STAMP = struct.Struct(">d")


async def _perf_e2e(topic: str, bootstrap: str, num_records: int, throughput: float,
                    record_size: int, acks: int) -> dict[str, Any]:
    from klamm.client import Consumer, Producer, TopicPartition

    tp = TopicPartition(topic, 0)
    padding = os.urandom(record_size - STAMP.size)
    stats = Stats(record_size)
    async with Producer(bootstrap_servers=bootstrap, acks=acks, linger_ms=0) as producer, \
            Consumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=500) as consumer:
        await producer.partitions_for(topic)
        consumer.assign([tp])
        freeze_startup_objects()
        await consumer.seek_to_end(tp)
        await consumer.position(tp)

        async def receive() -> None:
            perf_counter = time.perf_counter
            while stats.records < num_records:
                batch = await consumer.getmany(tp, timeout_ms=10_000)
                if not batch:
                    raise click.ClickException(
                        f"no record for 10 s after {stats.records} of {num_records}")
                now = perf_counter()
                for rec in batch.get(tp, ()):
                    stats.latencies_ms.append((now - STAMP.unpack_from(rec.value)[0]) * 1000)
                stats.add(len(batch.get(tp, ())), len(batch.get(tp, ())) * record_size)
                stats.progress("delivered")

        receiver = asyncio.ensure_future(receive())
        try:
            throttle = Throttle(throughput)
            stats.started = time.perf_counter()
            for i in range(num_records):
                if receiver.done():
                    break
                await throttle.pace(i)
                await producer.send(topic, STAMP.pack(time.perf_counter()) + padding,
                                    partition=0)
            await asyncio.wait_for(asyncio.shield(receiver), timeout=60)
        finally:  # interrupted or failed: the receiver's end is ours to collect
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)
        receiver.result()
    return stats.summary()

