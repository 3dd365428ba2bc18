"""Transaction log, snapshots and group commit: restart restores, torn tails are cut."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from klamm.zk import snapshot as snapshots
from klamm.zk.database import ZkDatabase
from klamm.zk.tree import DataTree, TreeImage
from klamm.zk.txn import (CheckTxn, CloseSessionTxn, CreateSessionTxn, CreateTxn, DeleteTxn,
                          MultiTxn, SetTxn)
from klamm.zk.txnlog import encode_record, log_files, scan


async def open_db(path: Path, **kw: int) -> ZkDatabase:
    db = ZkDatabase(path, **kw)
    db.load()
    db.start()
    return db


async def wait_durable(db: ZkDatabase, zxid: int) -> None:
    await asyncio.wait_for(db.wait_durable(zxid), 10)


async def test_restart_restores_every_durable_transaction(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    db.apply(CreateTxn("/a", b"1"))
    db.apply(CreateSessionTxn(5, 800, b"pw"))
    db.apply(CreateTxn("/a/e", ephemeral_owner=5))
    _, _, zxid = db.apply(SetTxn("/a", b"2"))
    await wait_durable(db, zxid)
    image = db.tree.dump()
    await db.close()
    again = await open_db(tmp_path)
    assert again.tree.dump() == image and again.replayed == 4
    assert again.tree.sessions[5].timeout_ms == 800
    await again.close()


async def test_concurrent_writes_share_fsyncs(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    last = 0
    for i in range(500):
        _, _, last = db.apply(CreateTxn(f"/n{i}"))
        if i % 50 == 0:
            await asyncio.sleep(0)  # let the committer pick up what has queued so far
    await wait_durable(db, last)
    assert db.commits < 100
    await db.close()


async def test_failed_transaction_is_neither_applied_nor_logged(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    db.apply(CreateTxn("/a"))
    try:
        db.apply(CreateTxn("/a"))
    except Exception as exc:  # noqa: BLE001
        assert type(exc).__name__ == "NodeExistsError"
    await db.close()
    again = await open_db(tmp_path)
    assert again.replayed == 1 and again.tree.last_zxid == 1
    await again.close()


async def test_truncated_log_tail_is_cut_on_restart(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    for i in range(10):
        db.apply(CreateTxn(f"/n{i}", b"x" * 100))
    await db.close()
    (_, path), = log_files(tmp_path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 37)  # tear the last record
    again = await open_db(tmp_path)
    assert again.tree.last_zxid == 9 and again.tree.exists("/n9") is None
    assert again.txnlog.truncated_bytes > 0
    assert path.stat().st_size < size - 37
    _, _, zxid = again.apply(CreateTxn("/after"))
    assert zxid == 10
    await again.close()
    third = await open_db(tmp_path)
    assert third.tree.exists("/after") is not None and third.txnlog.truncated_bytes == 0
    await third.close()


async def test_corrupt_record_ends_replay_before_it(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    for i in range(5):
        db.apply(CreateTxn(f"/n{i}", b"y" * 50))
    await db.close()
    (_, path), = log_files(tmp_path)
    data = bytearray(path.read_bytes())
    records, _ = scan(bytes(data))
    third_start = sum(len(encode_record(r.zxid, r.time_ms, r.txn)) for r in records[:2])
    data[third_start + 20] ^= 0xFF
    path.write_bytes(bytes(data))
    again = await open_db(tmp_path)
    assert again.tree.last_zxid == 2 and again.tree.exists("/n2") is None
    await again.close()


async def test_snapshots_bound_replay_and_old_logs_are_purged(tmp_path: Path) -> None:
    db = await open_db(tmp_path, snapshot_every=20, log_roll_bytes=1 << 30)
    last = 0
    for i in range(95):
        _, _, last = db.apply(CreateTxn(f"/n{i}"))
        await asyncio.sleep(0)
    await wait_durable(db, last)
    await db.close()
    snaps = snapshots.snapshot_files(tmp_path)
    assert 1 <= len(snaps) <= 2
    assert len(log_files(tmp_path)) <= 3
    again = await open_db(tmp_path)
    assert again.tree.last_zxid == 95 and len(again.tree) == 96
    assert again.replayed < 95 - snaps[0][0] + 1
    await again.close()


async def test_corrupt_newest_snapshot_falls_back_to_the_older_one(tmp_path: Path) -> None:
    db = await open_db(tmp_path, snapshot_every=10)
    for i in range(35):
        db.apply(CreateTxn(f"/n{i}"))
        await db.snapshot_done()
    await db.close()
    snaps = snapshots.snapshot_files(tmp_path)
    assert len(snaps) == 2
    snaps[-1][1].write_bytes(b"KZS1garbage")
    again = await open_db(tmp_path)
    assert again.tree.last_zxid == 35
    await again.close()


async def test_a_second_server_cannot_open_a_directory_in_use(tmp_path: Path) -> None:
    db = await open_db(tmp_path)
    with pytest.raises(RuntimeError, match="in use"):
        ZkDatabase(tmp_path).load()
    await db.close()
    again = await open_db(tmp_path)
    await again.close()


async def test_a_snapshot_holds_the_tree_at_its_zxid_while_writes_go_on(tmp_path: Path) -> None:
    db = await open_db(tmp_path, snapshot_every=400, log_roll_bytes=1 << 30)
    for i in range(399):
        db.apply(CreateTxn(f"/n{i}", b"0"))
    at_freeze: list[dict[str, object]] = []
    freeze = db.tree.freeze

    def spy() -> TreeImage:
        at_freeze.append(db.tree.dump())
        return freeze()

    db.tree.freeze = spy  # type: ignore[method-assign]
    _, _, snap_zxid = db.apply(CreateTxn("/n399", b"0"))
    first = db._snapshotting
    assert at_freeze and first is not None  # encoding and writing happen later
    writes = 0
    last = snap_zxid
    while writes < 50 or not first.done():  # before and while it is written
        db.apply(SetTxn(f"/n{399 - writes % 400}", b"w%d" % writes))
        db.apply(DeleteTxn(f"/n{writes % 400}"))
        _, _, last = db.apply(CreateTxn(f"/n{writes % 400}", b"again"))
        writes += 1
        if writes >= 50:
            await asyncio.sleep(0.002)  # pace the writes; the snapshot thread needs the GIL
    await wait_durable(db, last)
    final = db.tree.dump()
    await db.close()
    path, = [p for z, p in snapshots.snapshot_files(tmp_path) if z == snap_zxid]
    assert snapshots.decode_snapshot(path.read_bytes()) == at_freeze[0]
    again = await open_db(tmp_path)
    assert again.tree.dump() == final and again.replayed <= last - snap_zxid
    await again.close()


async def test_sequential_suffixes_keep_increasing_across_a_restart(tmp_path: Path) -> None:
    db = await open_db(tmp_path, snapshot_every=5)  # restart = a snapshot plus a log tail
    db.apply(CreateTxn("/q"))
    names = []
    for _ in range(12):
        names.append(db.apply(CreateTxn("/q/s-", sequential=True))[0])
        await db.snapshot_done()
    db.apply(DeleteTxn(names[-1]))  # the highest suffix is gone, yet is not reused
    await db.close()
    assert snapshots.snapshot_files(tmp_path)
    again = await open_db(tmp_path)
    assert again.replayed > 0
    after = again.apply(CreateTxn("/q/s-", sequential=True))[0]
    assert names == sorted(names) and after > names[-1]
    await again.close()


async def test_the_log_replayed_into_a_bare_tree_gives_the_same_tree(tmp_path: Path) -> None:
    """What a follower of a replicated log would do: the tree needs nothing but the records."""
    db = await open_db(tmp_path, log_roll_bytes=1024)
    db.apply(CreateSessionTxn(9, 1000, b"pw"))
    for i in range(30):
        db.apply(CreateTxn(f"/d/n{i}", b"v" * 40, ephemeral_owner=9 if i % 3 == 0 else 0,
                           makepath=True))
        _, _, zxid = db.apply(SetTxn(f"/d/n{i}", b"w"))
        if i % 5 == 0:
            await wait_durable(db, zxid)  # separate group commits, so the log rolls
    db.apply(MultiTxn((CheckTxn("/d/n1", 1), DeleteTxn("/d/n1"),
                       CreateTxn("/d/s-", sequential=True))))
    db.apply(CloseSessionTxn(9))
    await db.close()
    assert len(log_files(tmp_path)) > 1
    follower = DataTree()
    for _, path in log_files(tmp_path):
        records, _ = scan(path.read_bytes())
        for rec in records:
            follower.apply(rec.txn, rec.zxid, rec.time_ms)
    assert follower.dump() == db.tree.dump()
