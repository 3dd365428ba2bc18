"""A standalone broker under the hostile clients of issue 10, one fresh broker per case: its
peak resident memory (VmHWM) and the worst round trip an honest client saw meanwhile (a
METADATA request every 5 ms on its own connection: a loop stall shows as a slow answer).
Prints the numbers and writes the "## Hostile clients" section of BENCHMARKS.md. Targets:
peak RSS under 300 MB, worst round trip under 100 ms.

    .venv/bin/python bench/hostile.py
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import struct
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any


from common import ROOT, ServerProcess, machine, replace_section

sys.path.insert(0, str(ROOT))
from klamm.protocol.api import ApiKey  # noqa: E402
from klamm.protocol.frame import (FrameDecoder, RequestHeader, encode_request,  # noqa: E402
                                  parse_response)
from klamm.protocol.records import build_batch  # noqa: E402
from tests.support.batches import forged_batch, zstd_bomb  # noqa: E402

MB = 1 << 20
HOLD_S = 3.0  # how long each attack runs while the probe measures


def request(api: int, body: Any, payload: bytes = b"", cid: int = 1) -> bytes:
    return encode_request(RequestHeader(api, 0, cid, "hostile"), body, payload)


async def call(address: str, api: int, body: Any, payload: bytes = b"") -> Any:
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request(api, body, payload))
    decoder = FrameDecoder()
    try:
        while True:
            data = await asyncio.wait_for(reader.read(1 << 20), 60)
            if not data:
                return None
            for meta, body_payload in decoder.feed(data):
                return parse_response(meta, body_payload).body
    finally:
        writer.close()


def rss_peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return math.nan


async def probe(address: str, stop: asyncio.Event) -> float:
    """The worst METADATA round trip, in ms, until ``stop``."""
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    decoder = FrameDecoder()
    worst = 0.0
    while not stop.is_set():
        started = time.perf_counter()
        writer.write(request(ApiKey.METADATA, {"topics": ["t"]}))
        got = False
        while not got:
            data = await reader.read(1 << 16)
            if not data:
                return math.inf
            got = bool(decoder.feed(data))
        worst = max(worst, (time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.005)
    writer.close()
    return worst


async def hold(address: str, payloads: list[bytes], connections: int = 1) -> None:
    """Open ``connections`` connections, write ``payloads`` on each, never read, hold."""
    host, port = address.rsplit(":", 1)
    writers = []
    for _ in range(connections):
        _, writer = await asyncio.open_connection(host, int(port))
        for p in payloads:
            writer.write(p)
        writers.append(writer)
    await asyncio.sleep(HOLD_S)
    for writer in writers:
        writer.transport.abort()


async def pipelined_fetches(address: str) -> str:
    fetch = request(ApiKey.FETCH, fetch_body("t", 0))
    await hold(address, [fetch * 50_000])
    return "not read while unread answers wait"


async def declared_claims(address: str) -> str:
    await hold(address, [struct.pack(">II", 100_000_004, 0) + b"x"], connections=5)
    return "no memory for declared sizes"


async def big_frames(address: str) -> str:
    frame = request(ApiKey.METADATA, {"topics": ["t"]}, bytes(60 * MB))
    await hold(address, [frame], connections=3)
    return "queued.max.request.bytes"


async def compacted_bomb(address: str) -> str:
    await create(address, "compacted", {"cleanup.policy": "compact"})
    bomb = forged_batch(zstd_bomb(1 << 30), count=1, attributes=4)
    r = await call(address, ApiKey.PRODUCE, produce_body("compacted", len(bomb)), bomb)
    return code_name(r["topics"][0]["partitions"][0]["error_code"])


async def metadata_repeated(address: str) -> str:
    r = await call(address, ApiKey.METADATA, {"topics": ["t"] * 250_000})
    return code_name(r.get("error_code", 0))


async def metadata_capped(address: str) -> str:
    r = await call(address, ApiKey.METADATA, {"topics": ["t"] * 10_000})
    return f"{len(r['topics'])} topic answered"


async def describe_configs_repeated(address: str) -> str:
    r = await call(address, ApiKey.DESCRIBE_CONFIGS,
                   {"resources": [{"type": "topic", "name": "t"}] * 1000})
    return f"{len(r['resources'])} resource answered"


async def delete_topics_string(address: str) -> str:
    r = await call(address, ApiKey.DELETE_TOPICS, {"topics": "x" * MB})
    return code_name(r["error_code"])


async def auto_create_many(address: str) -> str:
    r = await call(address, ApiKey.METADATA, {
        "topics": [f"auto-{i}" for i in range(1000)], "allow_auto_topic_creation": True})
    created = sum(t["error_code"] in (0, 5) for t in r["topics"])
    return f"{created} created, the rest told to ask again"


async def fetch_duplicates(address: str) -> str:
    body = fetch_body("t", 0)
    body["topics"][0]["partitions"] *= 20_200
    await hold(address, [request(ApiKey.FETCH, body)])
    return "answered once"


async def malformed_burst(address: str) -> str:
    bad = request(ApiKey.FETCH, {**fetch_body("t", 0), "max_wait_ms": math.inf})
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(bad * 5000)
    await asyncio.sleep(HOLD_S)
    writer.close()
    return "INVALID_REQUEST, one log line per 10 s"


def fetch_body(topic: str, partition: int) -> dict[str, Any]:
    return {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 50 * MB,
            "topics": [{"topic": topic, "partitions": [
                {"partition": partition, "fetch_offset": 0, "partition_max_bytes": MB}]}]}


def produce_body(topic: str, size: int) -> dict[str, Any]:
    return {"acks": 1, "timeout_ms": 5000,
            "topics": [{"topic": topic, "partitions": [{"partition": 0, "size": size}]}]}


async def create(address: str, name: str, configs: dict[str, str] | None = None) -> None:
    await call(address, ApiKey.CREATE_TOPICS, {"topics": [
        {"topic": name, "num_partitions": 1, "replication_factor": 1,
         "configs": configs or {}}], "timeout_ms": 5000})


def code_name(code: int) -> str:
    from klamm.protocol.errors import ErrorCode
    return ErrorCode(code).name


CASES: list[tuple[str, Callable[[str], Awaitable[str]]]] = [
    ("50,000 pipelined fetches (8 KiB answers), never read", pipelined_fetches),
    ("5 connections declaring 100 MB frames, sending 1 byte", declared_claims),
    ("3 connections each sending a 60 MB frame at once", big_frames),
    ("a 1 GiB zstd bomb produced to a compacted topic", compacted_bomb),
    ("METADATA naming one topic 250,000 times", metadata_repeated),
    ("METADATA naming one topic 10,000 times (the cap)", metadata_capped),
    ("DESCRIBE_CONFIGS of one topic 1,000 times", describe_configs_repeated),
    ("DELETE_TOPICS given a 1 MiB string", delete_topics_string),
    ("METADATA auto-creating 1,000 topics", auto_create_many),
    ("a fetch naming one partition 20,200 times, never read", fetch_duplicates),
    ("5,000 malformed fetches (max_wait_ms = inf)", malformed_burst),
]


def probe_process(address: str, stop: Any, result: Any) -> None:
    """The honest client, in a process of its own: the attacker's work is not counted."""
    async def go() -> float:
        flag = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.01)
            flag.set()
        watcher = asyncio.ensure_future(watch())
        worst = await probe(address, flag)
        watcher.cancel()
        return worst
    result.put(asyncio.run(go()))


async def run_case(address: str, pid: int, attack: Callable[[str], Awaitable[str]]
                   ) -> tuple[float, float, str]:
    await create(address, "t")
    data = build_batch([[0, 0, None, b"v" * 1000, ()]] * 8, 0, 0)
    await call(address, ApiKey.PRODUCE, produce_body("t", len(data)), data)
    stop, result = multiprocessing.Event(), multiprocessing.Queue()
    prober = multiprocessing.Process(target=probe_process, args=(address, stop, result))
    prober.start()
    await asyncio.sleep(0.5)
    outcome = await attack(address)
    await asyncio.sleep(0.5)
    stop.set()
    worst = await asyncio.get_running_loop().run_in_executor(None, result.get, True, 60)
    prober.join(10)
    return rss_peak_mb(pid), worst, outcome


def main() -> None:
    info = machine()
    rows = []
    for label, attack in CASES:
        with tempfile.TemporaryDirectory() as data, \
                ServerProcess("klamm.broker.cli", data, args=("standalone",)) as broker:
            assert broker.proc is not None
            rss, worst, outcome = asyncio.run(run_case(broker.address, broker.proc.pid, attack))
            alive = broker.proc.poll() is None
        rows.append((label, rss, worst, outcome if alive else "BROKER DIED"))
        print(f"  {label}: peak RSS {rss:.0f} MB, worst round trip {worst:.1f} ms ({outcome})",
              flush=True)
    lines = ["## Hostile clients", "",
             f"Generated by `.venv/bin/python bench/hostile.py` on {info['date']} "
             f"({info['cores']} CPUs, attacker, probe and broker sharing them): a fresh "
             f"standalone broker per case, its peak resident memory (VmHWM), and the worst "
             f"round trip of an honest METADATA request sent every 5 ms meanwhile, from a "
             f"process of its own. Targets: "
             f"under 300 MB, under 100 ms.", "",
             "| case | peak RSS | worst honest round trip | outcome |",
             "|---|---:|---:|---|"]
    lines += [f"| {label} | {rss:.0f} MB | {worst:.1f} ms | {outcome} |"
              for label, rss, worst, outcome in rows]
    section = "\n".join(lines) + "\n"
    replace_section(Path(ROOT) / "BENCHMARKS.md", section, "## Hostile clients")
    print(section)


if __name__ == "__main__":
    main()
