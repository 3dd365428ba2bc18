"""Real broker processes: clean SIGTERM shutdown and kill -9 without losing acknowledged data."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from klamm.protocol.api import ApiKey
from tests.support.processes import BrokerProcess
from tests.support.raw import RawConnection, batch, create_topic, fetch_body, produce_body, read_all


async def test_kill_9_during_acks_1_production_loses_nothing_acknowledged(
        tmp_path: Path) -> None:
    broker = BrokerProcess(str(tmp_path / "data"),
                           overrides={"log.flush.interval.messages": 1,
                                      "log.segment.bytes": 64 * 1024})
    await asyncio.to_thread(broker.start)
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "durable")
    acked: dict[int, bytes] = {}
    enough = asyncio.Event()

    async def produce_forever() -> None:
        i = 0
        try:
            while i < 100_000:
                values = [b"record-%d-%d" % (i, j) for j in range(5)]
                data = batch(values)
                # Several requests in flight, like a real producer.
                futs = []
                for _ in range(4):
                    futs.append((conn.send(ApiKey.PRODUCE, produce_body("durable", 0, len(data)),
                                           data), values))
                for _, vals in futs:
                    r = await conn.receive()
                    res = r.body["topics"][0]["partitions"][0]
                    assert res["error_code"] == 0
                    for j, v in enumerate(vals):
                        acked[res["base_offset"] + j] = v
                i += 1
                if len(acked) >= 2000:
                    enough.set()
        except (ConnectionError, OSError, TimeoutError):
            return

    producer = asyncio.ensure_future(produce_forever())
    await asyncio.wait_for(enough.wait(), timeout=60)
    await asyncio.to_thread(broker.kill)
    await asyncio.wait_for(producer, timeout=30)
    assert len(acked) >= 2000

    await asyncio.to_thread(broker.start)
    stored = await read_all(broker.bootstrap, "durable")
    missing = [o for o in acked if stored.get(o) != acked[o]]
    assert not missing, f"{len(missing)} acknowledged records lost, first {missing[:5]}"
    # Offsets stay dense after recovery: no gaps below the log end.
    assert sorted(stored) == list(range(len(stored)))
    broker.kill()


async def test_sigterm_answers_in_flight_requests_then_exits_cleanly(tmp_path: Path) -> None:
    broker = BrokerProcess(str(tmp_path / "data"))
    await asyncio.to_thread(broker.start)
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t")
    data = batch([b"kept"] * 10)
    r = await conn.call(ApiKey.PRODUCE, produce_body("t", 0, len(data)), data)
    assert r.body["topics"][0]["partitions"][0]["error_code"] == 0
    # A long poll is parked when the signal arrives: it must be answered, not dropped.
    cid = conn.send(ApiKey.FETCH, fetch_body("t", 0, 10, max_wait_ms=60_000))
    code = await asyncio.to_thread(broker.terminate, 30)
    assert code == 0, "".join(broker.output)
    r = await conn.receive(timeout=5)
    assert r.correlation_id == cid
    assert any("stopped cleanly" in line for line in broker.output)

    await asyncio.to_thread(broker.start)
    assert any("listening" in line for line in broker.output)
    stored = await read_all(broker.bootstrap, "t")
    assert list(stored.values()) == [b"kept"] * 10
    assert await asyncio.to_thread(broker.terminate, 30) == 0


def _tree(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``root`` with its size, mtime and content."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path.relative_to(root))] = (st.st_size, st.st_mtime_ns, path.read_bytes())
    return out


async def test_a_second_broker_on_a_data_dir_in_use_refuses_and_touches_nothing(
        tmp_path: Path) -> None:
    """Before, a second broker on the same dir "recovered" the live one's logs, and records
    the first acknowledged could not be read back. Now it exits 1 with one line naming the
    dir and the holder's pid, before writing anything; once the holder is gone (even by
    SIGKILL, which leaves no stale lock) the dir is free."""
    data = tmp_path / "data"
    first = BrokerProcess(str(data))
    await asyncio.to_thread(first.start)
    conn = await RawConnection.open(first.bootstrap)
    await create_topic(conn, "t")
    values = [b"v%d" % i for i in range(5)]
    data_batch = batch(values)
    r = await conn.call(ApiKey.PRODUCE, produce_body("t", 0, len(data_batch)), data_batch)
    assert r.body["topics"][0]["partitions"][0]["error_code"] == 0
    before = _tree(data)

    for command in (["klamm.broker.cli", "standalone"],
                    ["klamm.broker", "--broker-id", "0", "--zk", "127.0.0.1:1"]):
        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", *command, "--listen", "127.0.0.1:0", "--data-dir", str(data),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == 1, out
        lines = out.decode().strip().splitlines()
        assert lines == [f"error: data dir {data} is in use by another broker (pid "
                         f"{first.proc.pid}); stop that one first, or give this one its own "
                         f"--data-dir (log.dir)"], lines
    assert _tree(data) == before
    assert await read_all(first.bootstrap, "t") == dict(enumerate(values))
    await conn.close()

    await asyncio.to_thread(first.kill)
    again = BrokerProcess(str(data))
    await asyncio.to_thread(again.start)
    assert await read_all(again.bootstrap, "t") == dict(enumerate(values))
    assert again.terminate() == 0
