"""Watches: one-shot, delivered after the change, in order with the client's own requests."""

from __future__ import annotations

import asyncio

from klamm.zk import EventType, WatchedEvent, WatchQueue
from tests.zk.conftest import ClientFactory


async def test_data_watch_fires_once_per_registration(zk: ClientFactory) -> None:
    a, b = await zk(), await zk()
    await b.create("/w", b"0")
    seen = WatchQueue()
    await a.get("/w", watch=seen)
    await b.set("/w", b"1")
    assert await seen.get(5) == WatchedEvent(EventType.CHANGED, "/w")
    await b.set("/w", b"2")
    await a.get("/w")  # any event from the second set would arrive before this reply
    assert seen.pending() == 0


async def test_watch_event_arrives_before_the_reply_to_a_later_request(
        zk: ClientFactory) -> None:
    a, b = await zk(), await zk()
    await b.create("/w", b"0")
    events: list[WatchedEvent] = []
    await a.get("/w", watch=events.append)
    await b.set("/w", b"1")
    data, _ = await a.get("/w")
    assert data == b"1" and events == [WatchedEvent(EventType.CHANGED, "/w")]


async def test_exists_watch_on_a_missing_node_fires_on_creation(zk: ClientFactory) -> None:
    a, b = await zk(), await zk()
    seen = WatchQueue()
    assert await a.exists("/later", watch=seen) is None
    await b.create("/later")
    assert await seen.get(5) == WatchedEvent(EventType.CREATED, "/later")


async def test_child_watch_fires_on_child_creation_and_deletion(zk: ClientFactory) -> None:
    a, b = await zk(), await zk()
    await b.create("/p")
    seen = WatchQueue()
    assert await a.get_children("/p", watch=seen) == []
    await b.create("/p/c")
    assert await seen.get(5) == WatchedEvent(EventType.CHILD, "/p")
    assert await a.get_children("/p", watch=seen) == ["c"]
    await b.delete("/p/c")
    assert await seen.get(5) == WatchedEvent(EventType.CHILD, "/p")


async def test_deletion_fires_data_and_child_watches_on_the_node(zk: ClientFactory) -> None:
    a, b = await zk(), await zk()
    await b.create("/d")
    data_seen, child_seen = WatchQueue(), WatchQueue()
    await a.get("/d", watch=data_seen)
    await a.get_children("/d", watch=child_seen)
    await b.delete("/d")
    assert await data_seen.get(5) == WatchedEvent(EventType.DELETED, "/d")
    assert await child_seen.get(5) == WatchedEvent(EventType.DELETED, "/d")


async def test_events_of_many_changes_arrive_in_change_order(zk: ClientFactory) -> None:
    a, b = await zk(), await zk()
    order: list[str] = []
    for i in range(20):
        await b.create(f"/o{i}")
        await a.get(f"/o{i}", watch=lambda ev: order.append(ev.path))
    await asyncio.gather(*(b.set(f"/o{i}", b"x") for i in range(20)))
    await a.exists("/o0")
    assert order == [f"/o{i}" for i in range(20)]


async def test_async_watch_callbacks_and_chrooted_paths(zk: ClientFactory) -> None:
    root = await zk()
    await root.create("/c1/node", makepath=True)
    a = await zk(chroot="/c1")
    got: asyncio.Future[WatchedEvent] = asyncio.get_running_loop().create_future()

    async def callback(event: WatchedEvent) -> None:
        got.set_result(event)

    await a.get("/node", watch=callback)
    await root.set("/c1/node", b"v")
    assert await asyncio.wait_for(got, 5) == WatchedEvent(EventType.CHANGED, "/node")


async def test_a_failed_read_registers_no_watch(zk: ClientFactory) -> None:
    a, b = await zk(), await zk()
    seen = WatchQueue()
    try:
        await a.get("/missing", watch=seen)
    except Exception as exc:  # noqa: BLE001
        assert type(exc).__name__ == "NoNodeError"
    await b.create("/missing")
    await b.set("/missing", b"1")
    await a.exists("/missing")
    assert seen.pending() == 0


async def test_a_watch_queue_is_an_async_iterator_of_one_shot_events(zk: ClientFactory) -> None:
    a, b = await zk(), await zk()
    await b.create("/brokers/ids", makepath=True)
    queue = WatchQueue()
    seen: list[list[str]] = [await a.get_children("/brokers/ids", watch=queue)]

    async def follow() -> None:  # the controller's loop: each event re-reads and re-arms
        async for event in queue:
            assert event == WatchedEvent(EventType.CHILD, "/brokers/ids")
            seen.append(await a.get_children("/brokers/ids", watch=queue))
            if seen[-1] == ["1", "2", "3"]:
                return

    follower = asyncio.ensure_future(follow())
    for broker_id in ("1", "2", "3"):
        await b.create(f"/brokers/ids/{broker_id}", ephemeral=True)
    await asyncio.wait_for(follower, 5)
    assert seen[0] == [] and seen[-1] == ["1", "2", "3"]
    lengths = [len(children) for children in seen]
    assert lengths == sorted(set(lengths))  # each event showed something new, never less


async def test_one_callback_set_by_several_reads_gets_a_deletion_once(
        zk: ClientFactory) -> None:
    a, b = await zk(), await zk()
    await b.create("/d")
    seen = WatchQueue()
    await a.get("/d", watch=seen)
    await a.exists("/d", watch=seen)
    await a.get_children("/d", watch=seen)
    await b.delete("/d")
    assert await seen.get(5) == WatchedEvent(EventType.DELETED, "/d")
    await a.exists("/d")  # a second delivery would arrive before this reply
    assert seen.pending() == 0


async def test_a_clients_own_write_fires_its_watch_before_the_write_returns(
        zk: ClientFactory) -> None:
    a = await zk()
    await a.create("/own", b"0")
    events: list[WatchedEvent] = []
    await a.get("/own", watch=events.append)
    await a.get_children("/", watch=events.append)
    await a.set("/own", b"1")
    assert events == [WatchedEvent(EventType.CHANGED, "/own")]
    await a.delete("/own")
    assert events[1:] == [WatchedEvent(EventType.CHILD, "/")]
