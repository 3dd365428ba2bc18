"""Every client operation against a real in-process server: results, stats and errors."""

from __future__ import annotations

import asyncio

import pytest

from klamm.zk import (BadArgumentsError, BadVersionError, Check, Create, DataTooLargeError,
                      Delete, EventType, NodeExistsError, NoNodeError, NotEmptyError, SetData,
                      WatchedEvent, WatchQueue, ZkClient)
from klamm.zk.errors import NoChildrenForEphemeralsError
from klamm.zk.server import ZkServer
from tests.zk.conftest import ClientFactory


async def test_create_get_set_delete_with_versions(zk: ClientFactory) -> None:
    c = await zk()
    assert await c.create("/a", b"one") == "/a"
    data, stat = await c.get("/a")
    assert data == b"one" and stat.version == 0
    stat = await c.set("/a", b"two", version=0)
    assert stat.version == 1
    with pytest.raises(BadVersionError):
        await c.set("/a", b"three", version=0)
    with pytest.raises(BadVersionError):
        await c.delete("/a", version=0)
    await c.delete("/a", version=1)
    assert await c.exists("/a") is None
    with pytest.raises(NoNodeError):
        await c.get("/a")


async def test_create_variants_and_their_errors(zk: ClientFactory) -> None:
    c = await zk()
    assert await c.create("/x/y/z", makepath=True) == "/x/y/z"
    with pytest.raises(NodeExistsError):
        await c.create("/x")
    with pytest.raises(NoNodeError):
        await c.create("/nope/child")
    seq = [await c.create("/x/s-", sequential=True) for _ in range(2)]
    assert seq == ["/x/s-0000000001", "/x/s-0000000002"]
    assert await c.get_children("/x") == ["s-0000000001", "s-0000000002", "y"]
    eph = await c.create("/x/e", ephemeral=True)
    assert (await c.exists(eph)).ephemeral_owner == c.session_id  # type: ignore[union-attr]
    with pytest.raises(NoChildrenForEphemeralsError):
        await c.create("/x/e/child")
    with pytest.raises(NotEmptyError):
        await c.delete("/x")
    await c.delete("/x", recursive=True)
    assert await c.get_children("/") == []


async def test_multi_is_all_or_nothing(zk: ClientFactory) -> None:
    c = await zk()
    await c.create("/m", b"0")
    with pytest.raises(BadVersionError) as info:
        await c.multi([Create("/m/a"), SetData("/m", b"1"), Check("/m", 0)])
    assert info.value.index == 2  # type: ignore[attr-defined]
    assert await c.get_children("/m") == [] and (await c.get("/m"))[0] == b"0"
    results = await c.multi([Check("/m", 0), Create("/m/a", b"a"), SetData("/m", b"1", 0),
                             Delete("/m/a")])
    assert results[0] is None and results[1] == "/m/a" and results[2].version == 1  # type: ignore[union-attr]
    assert results[3] is None and await c.exists("/m/a") is None


async def test_bad_input_gets_a_clear_error_and_the_session_keeps_working(
        zk: ClientFactory) -> None:
    c = await zk()
    with pytest.raises(BadArgumentsError):
        await c.create("relative")
    with pytest.raises(DataTooLargeError, match="max.node.bytes"):
        await c.create("/big", b"x" * (1024 * 1024 + 1))
    assert await c.create("/ok") == "/ok"


async def test_chroot_isolates_two_clusters(zk: ClientFactory) -> None:
    root = await zk()
    await root.create("/klamm-a", makepath=True)
    await root.create("/klamm-b", makepath=True)
    a = await zk(chroot="/klamm-a")
    b_client = await zk(hosts=f"{root.hosts[0][0]}:{root.hosts[0][1]}/klamm-b")
    assert await a.create("/brokers/ids/1", b"a", makepath=True) == "/brokers/ids/1"
    assert await b_client.exists("/brokers/ids/1") is None
    await b_client.create("/brokers/ids/1", b"b", makepath=True)
    assert (await a.get("/brokers/ids/1"))[0] == b"a"
    assert (await b_client.get("/brokers/ids/1"))[0] == b"b"
    assert await root.get_children("/klamm-a/brokers/ids") == ["1"]
    assert await a.get_children("/") == ["brokers"]
    seq = await a.create("/q-", sequential=True)
    assert seq.startswith("/q-") and not seq.startswith("/klamm-a")


async def test_chroot_isolation_covers_multi_watches_ephemerals_and_deletes(
        zk: ClientFactory) -> None:
    root = await zk()
    a, b = await zk(chroot="/klamm-a"), await zk(chroot="/klamm-b")
    for client, tag in ((a, b"a"), (b, b"b")):
        await client.create("/brokers/ids/1", tag, makepath=True)  # makes the chroot too
    a_data, b_children = WatchQueue(), WatchQueue()
    await a.get("/brokers/ids/1", watch=a_data)
    await b.get_children("/brokers/ids", watch=b_children)
    results = await a.multi([Check("/brokers/ids/1", 0), SetData("/brokers/ids/1", b"a2", 0),
                             Create("/brokers/ids/2", ephemeral=True),
                             Create("/seq-", sequential=True)])
    assert results[2] == "/brokers/ids/2" and str(results[3]).startswith("/seq-")
    assert await a_data.get(5) == WatchedEvent(EventType.CHANGED, "/brokers/ids/1")
    with pytest.raises(BadVersionError):  # a's versions are a's: b's node is still at 0
        await a.multi([Check("/brokers/ids/1", 0)])
    assert (await b.exists("/brokers/ids/1")).version == 0  # type: ignore[union-attr]
    await a.delete("/brokers", recursive=True)
    assert await a.get_children("/") == [str(results[3])[1:]]
    assert (await b.get("/brokers/ids/1"))[0] == b"b"
    assert await b.get_children("/brokers/ids") == ["1"]
    assert b_children.pending() == 0  # nothing a did reached b's watch
    assert await root.get_children("/") == ["klamm-a", "klamm-b"]
    for escape in ("/../klamm-b/brokers", "/./brokers", "//klamm-b"):
        with pytest.raises(BadArgumentsError):
            await a.get(escape)


async def test_concurrent_compare_and_set_has_exactly_one_winner(zk: ClientFactory) -> None:
    clients = [await zk() for _ in range(8)]
    await clients[0].create("/topics/orders/state", b"epoch 0", makepath=True)
    await clients[0].create("/controller_epoch", b"1")

    async def try_set(n: int) -> bool:
        try:
            await clients[n].set("/topics/orders/state", b"by %d" % n, version=0)
        except BadVersionError:
            return False
        return True

    async def try_multi(n: int) -> bool:  # the controller's guarded write
        try:
            await clients[n].multi([Check("/controller_epoch", 0),
                                    SetData("/topics/orders/state", b"multi %d" % n, 1)])
        except BadVersionError:
            return False
        return True

    won = await asyncio.gather(*(try_set(n) for n in range(8)))
    assert won.count(True) == 1
    data, stat = await clients[0].get("/topics/orders/state")
    assert data == b"by %d" % won.index(True) and stat.version == 1
    won = await asyncio.gather(*(try_multi(n) for n in range(8)))
    assert won.count(True) == 1 and (await clients[0].get("/topics/orders/state"))[1].version == 2


async def test_sequential_suffixes_are_unique_and_follow_creation_order(
        zk: ClientFactory) -> None:
    clients = [await zk() for _ in range(6)]
    await clients[0].create("/q")

    async def make(c: ZkClient) -> list[str]:
        return [await c.create("/q/item-", sequential=True) for _ in range(10)]

    created = [p for paths in await asyncio.gather(*(make(c) for c in clients)) for p in paths]
    assert len(set(created)) == 60
    stats = {p: await clients[0].exists(p) for p in created}
    by_zxid = sorted(created, key=lambda p: stats[p].czxid)  # type: ignore[union-attr]
    assert by_zxid == sorted(created)  # suffix order is creation order
    for paths in (created[i:i + 10] for i in range(0, 60, 10)):
        assert paths == sorted(paths)  # each client's own creates increase


async def test_a_failed_multi_fires_no_watch_and_uses_no_zxid(zk_server: ZkServer,
                                                              zk: ClientFactory) -> None:
    a, b = await zk(), await zk()
    await a.create("/m", b"0")
    data_seen, child_seen = WatchQueue(), WatchQueue()
    await b.get("/m", watch=data_seen)
    await b.get_children("/m", watch=child_seen)
    before = zk_server.db.tree.last_zxid
    with pytest.raises(NodeExistsError) as info:
        await a.multi([SetData("/m", b"1", 0), Create("/m/c"), Create("/m/c")])
    assert info.value.index == 2  # type: ignore[attr-defined]
    await b.exists("/m")  # an event from the failed multi would arrive before this reply
    assert data_seen.pending() == 0 and child_seen.pending() == 0
    assert zk_server.db.tree.last_zxid == before and (await b.get("/m"))[1].version == 0
    await a.multi([SetData("/m", b"1", 0), Create("/m/c")])
    assert zk_server.db.tree.last_zxid == before + 1  # one transaction, one zxid
    assert await data_seen.get(5) == WatchedEvent(EventType.CHANGED, "/m")
    assert await child_seen.get(5) == WatchedEvent(EventType.CHILD, "/m")
