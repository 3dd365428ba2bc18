import pytest

from klamm.broker.cluster.model import BrokerRegistration, LeaderIsr, TopicAssignment
from klamm.broker.cluster.store import ClusterStore, ControllerMovedError, StateConflict
from klamm.zk.errors import NodeExistsError
from tests.zk.conftest import ClientFactory


async def _store(zk: ClientFactory, chroot: str = "/k") -> ClusterStore:
    store = ClusterStore(await zk(chroot=chroot))
    await store.ensure_layout()
    return store


async def test_cluster_id_is_created_once_and_then_read_back(zk: ClientFactory) -> None:
    store = await _store(zk)
    assert await store.cluster_id() is None
    assert await store.get_or_create_cluster_id("first") == "first"
    assert await store.get_or_create_cluster_id("second") == "first"
    other = await _store(zk, "/other")  # another chroot is another cluster
    assert await other.get_or_create_cluster_id("second") == "second"


async def test_registration_is_ephemeral_and_each_one_has_a_larger_epoch(
        zk: ClientFactory) -> None:
    client = await zk(chroot="/k")
    store = ClusterStore(client)
    await store.ensure_layout()
    epoch = await store.register_broker(BrokerRegistration(1, "h", 9092, "r1"))
    with pytest.raises(NodeExistsError):
        await ClusterStore(await zk(chroot="/k")).register_broker(BrokerRegistration(1, "x", 1))
    assert (await store.live_brokers())[1] == BrokerRegistration(1, "h", 9092, "r1", epoch)
    await client.close()
    later = ClusterStore(await zk(chroot="/k"))
    assert await later.live_brokers() == {}
    assert await later.register_broker(BrokerRegistration(1, "h", 9092)) > epoch


async def test_topics_are_created_with_their_configs_exactly_once(zk: ClientFactory) -> None:
    store = await _store(zk)
    topic = TopicAssignment("orders", "tid", {0: [1, 2], 1: [2, 1]})
    await store.create_topic(topic, {"retention.ms": 5})
    with pytest.raises(NodeExistsError):
        await store.create_topic(topic, {})
    assert await store.get_topic("orders") == topic
    assert await store.topic_configs("orders") == {"retention.ms": "5"}
    assert await store.topic_names() == ["orders"]


async def test_state_writes_are_conditional_on_version_and_controller_epoch(
        zk: ClientFactory) -> None:
    store = await _store(zk)
    epoch, version = await store.increment_controller_epoch()
    assert (epoch, version) == (1, 0)
    tp = ("orders", 0)
    [created] = (await store.write_states([(tp, LeaderIsr(1, 0, (1, 2), epoch), None)],
                                          version)).values()
    assert await store.get_state(tp) == created
    [updated] = (await store.write_states(
        [(tp, created.with_isr([1], epoch), created.partition_epoch)], version)).values()
    assert updated.partition_epoch == created.partition_epoch + 1
    with pytest.raises(StateConflict) as lost:  # decided on a stale read
        await store.write_states([(tp, created.with_isr([1, 2], epoch),
                                   created.partition_epoch), (("orders", 1),
                                   LeaderIsr(2, 0, (2,), epoch), None)], version)
    assert lost.value.failed == [tp] and list(lost.value.written) == [("orders", 1)]
    assert await store.get_state(("orders", 1)) is not None  # the other write went through
    await store.increment_controller_epoch()  # a new controller
    with pytest.raises(ControllerMovedError):
        await store.write_states([(tp, updated.with_isr([1, 2], epoch),
                                   updated.partition_epoch)], version)
    assert await store.get_state(tp) == updated


async def test_concurrent_controller_epoch_increments_never_share_an_epoch(
        zk: ClientFactory) -> None:
    import asyncio

    stores = [await _store(zk) for _ in range(5)]
    results = await asyncio.gather(*(s.increment_controller_epoch() for s in stores),
                                   return_exceptions=True)
    won = [r[0] for r in results if isinstance(r, tuple)]
    lost = [r for r in results if isinstance(r, ControllerMovedError)]
    assert len(won) + len(lost) == 5 and len(set(won)) == len(won) >= 1
    assert (await stores[0].controller_epoch())[0] == max(won) == len(won)


async def test_deleting_a_topic_removes_every_node_of_it(zk: ClientFactory) -> None:
    store = await _store(zk)
    _, version = await store.increment_controller_epoch()
    await store.create_topic(TopicAssignment("gone", "tid", {0: [1]}), {})
    await store.write_states([(("gone", 0), LeaderIsr(1, 0, (1,), 1), None)], version)
    await store.mark_for_deletion("gone")
    assert await store.topics_marked_for_deletion() == ["gone"]
    await store.delete_topic("gone", version)
    assert await store.topic_names() == [] and await store.topics_marked_for_deletion() == []
    assert await store.topic_configs("gone") == {}


async def test_config_changes_leave_a_notice_for_every_broker(zk: ClientFactory) -> None:
    store = await _store(zk)
    await store.create_topic(TopicAssignment("t", "tid", {0: [1]}), {})
    await store.set_topic_configs("t", {"retention.ms": 7})
    [notice] = await store.config_changes()
    assert await store.config_change_topic(notice) == "t"
    assert await store.topic_configs("t") == {"retention.ms": "7"}
