"""ClusterStore: where the cluster keeps its state in the coordination service, and how it is
read and changed. The one place that knows node paths (Kafka's ``KafkaZkClient``)::

    /cluster/id                               the cluster id
    /cluster/peer_secret                      what brokers prove membership with
                                              (``protocol.peer_auth``)
    /brokers/ids/<id>                         ephemeral: a live broker's host, port, rack
    /brokers/topics/<topic>                   topic id and replica assignment (partitions
                                              are only ever added to it)
    /brokers/topics/<topic>/partitions/<p>/state   leader, leader epoch, ISR
    /controller                               ephemeral: the controller's broker id
    /controller_epoch                         incremented by every new controller
    /admin/delete_topics/<topic>              topics waiting to be deleted
    /admin/reassign_partitions                partitions moving to new replicas (targets);
                                              the controller removes each once it is done
    /admin/removed_replicas                   replicas moved away whose broker has not
                                              confirmed deleting them yet (it may be down)
    /config/topics/<topic>                    topic config overrides
    /config/changes/config_change_<seq>       "topic X's config changed", for every broker

Partition state is written by the controller only, and only in a transaction that first
checks the controller epoch node still has the version this controller gave it: a controller
that was replaced (a zombie) cannot change anything. Each state write is also conditional on
the state's own version (the partition epoch), so a decision taken on a stale read fails
instead of overwriting. Reads of many nodes go out pipelined. Uses only the ``Coordination``
protocol, so any engine behind it works. Not thread-safe: one event loop.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

from klamm.zk.coordination import Coordination, WatchFn
from klamm.zk.errors import BadVersionError, NodeExistsError, NoNodeError
from klamm.zk.ops import Check, Create, Delete, MultiOp, SetData
from klamm.zk.tree import Stat

from .model import (BrokerRegistration, CorruptNode, LeaderIsr, TopicAssignment, decode_broker,
                    decode_cluster_id, decode_configs, decode_controller,
                    decode_reassignments, decode_removed_replicas, decode_state,
                    decode_topic, encode_broker, encode_cluster_id, encode_configs,
                    encode_controller, encode_reassignments, encode_removed_replicas,
                    encode_state, encode_topic)

CLUSTER_ID = "/cluster/id"
PEER_SECRET = "/cluster/peer_secret"
BROKER_IDS = "/brokers/ids"
TOPICS = "/brokers/topics"
CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"
DELETE_TOPICS = "/admin/delete_topics"
REASSIGNMENTS = "/admin/reassign_partitions"
REMOVED_REPLICAS = "/admin/removed_replicas"
TOPIC_CONFIGS = "/config/topics"
CONFIG_CHANGES = "/config/changes"
CONFIG_CHANGE_PREFIX = "config_change_"
PERSISTENT_PATHS = ("/cluster", BROKER_IDS, TOPICS, DELETE_TOPICS, TOPIC_CONFIGS,
                    CONFIG_CHANGES)

MULTI_CHUNK = 500  # state writes per transaction (a transaction is one request frame)

TP = tuple[str, int]
T = TypeVar("T")


def broker_path(broker_id: int) -> str:
    return f"{BROKER_IDS}/{broker_id}"


def topic_path(topic: str) -> str:
    return f"{TOPICS}/{topic}"


def state_path(topic: str, partition: int) -> str:
    return f"{TOPICS}/{topic}/partitions/{partition}/state"


def config_path(topic: str) -> str:
    return f"{TOPIC_CONFIGS}/{topic}"


class ControllerMovedError(Exception):
    """The controller epoch changed under this controller: another one was elected."""


class StateConflict(Exception):
    """A conditional write of partition states lost its race; ``failed`` names them."""

    def __init__(self, failed: list[TP], written: dict[TP, LeaderIsr]) -> None:
        super().__init__(f"partition state changed meanwhile: {failed[:5]}")
        self.failed = failed
        self.written = written


async def gather_chunks(calls: Iterable[Callable[[], Awaitable[T]]], width: int = 256) -> list[T]:
    """Run coroutine factories with at most ``width`` in flight; results in order."""
    out: list[T] = []
    batch: list[Awaitable[T]] = []
    for call in calls:
        batch.append(call())
        if len(batch) >= width:
            out.extend(await asyncio.gather(*batch))
            batch = []
    if batch:
        out.extend(await asyncio.gather(*batch))
    return out


class ClusterStore:
    def __init__(self, client: Coordination) -> None:
        self.client = client

    # ------------------------------------------------------------------ layout, cluster id
    async def ensure_layout(self) -> None:
        for path in PERSISTENT_PATHS:
            try:
                await self.client.create(path, makepath=True)
            except NodeExistsError:
                pass

    async def cluster_id(self) -> str | None:
        try:
            data, _ = await self.client.get(CLUSTER_ID)
        except NoNodeError:
            return None
        return decode_cluster_id(data, CLUSTER_ID)

    async def get_or_create_cluster_id(self, proposed: str) -> str:
        """The stored cluster id; ``proposed`` becomes it when none is stored yet."""
        try:
            await self.client.create(CLUSTER_ID, encode_cluster_id(proposed), makepath=True)
            return proposed
        except NodeExistsError:
            found = await self.cluster_id()
            assert found is not None
            return found

    async def get_or_create_peer_secret(self, proposed: str) -> bytes:
        """The cluster's peer secret; ``proposed`` becomes it when none is stored yet (a new
        cluster, or one made by a version without inter-broker authentication)."""
        try:
            await self.client.create(PEER_SECRET, proposed.encode(), makepath=True)
            return proposed.encode()
        except NodeExistsError:
            data, _ = await self.client.get(PEER_SECRET)
            if not data:
                raise CorruptNode(f"{PEER_SECRET} is empty; delete the node and restart the "
                                  f"brokers to make a new secret") from None
            return data

    # ------------------------------------------------------------------ brokers
    async def register_broker(self, reg: BrokerRegistration) -> int:
        """Create this broker's ephemeral node; returns its epoch. NodeExistsError when the id
        is taken (by a live broker, or a dead one whose session has not expired yet)."""
        await self.client.create(broker_path(reg.broker_id), encode_broker(reg), ephemeral=True,
                                 makepath=True)
        stat = await self.client.exists(broker_path(reg.broker_id))
        if stat is None:
            raise NoNodeError(f"{broker_path(reg.broker_id)} vanished right after creation")
        return stat.czxid

    async def get_broker(self, broker_id: int) -> tuple[BrokerRegistration, Stat] | None:
        path = broker_path(broker_id)
        try:
            data, stat = await self.client.get(path)
        except NoNodeError:
            return None
        return decode_broker(broker_id, data, stat.czxid, path), stat

    async def broker_ids(self, watch: WatchFn | None = None) -> list[int]:
        return sorted(int(c) for c in await self.client.get_children(BROKER_IDS, watch=watch)
                      if c.isdigit())

    async def live_brokers(self, watch: WatchFn | None = None) -> dict[int, BrokerRegistration]:
        ids = await self.broker_ids(watch)
        found = await gather_chunks(functools.partial(self.get_broker, b) for b in ids)
        return {b: got[0] for b, got in zip(ids, found, strict=True) if got is not None}

    # ------------------------------------------------------------------ controller
    async def controller_id(self, watch: WatchFn | None = None) -> int | None:
        try:
            data, _ = await self.client.get(CONTROLLER, watch=watch)
        except NoNodeError:
            return None
        return decode_controller(data, CONTROLLER)

    @staticmethod
    def controller_data(broker_id: int) -> bytes:
        return encode_controller(broker_id, int(time.time() * 1000))

    async def controller_epoch(self) -> tuple[int, int]:
        """``(epoch, version)``; ``(0, -1)`` before the first controller."""
        try:
            data, stat = await self.client.get(CONTROLLER_EPOCH)
        except NoNodeError:
            return 0, -1
        return int(data.decode() or 0), stat.version

    async def increment_controller_epoch(self) -> tuple[int, int]:
        """Bump the controller epoch conditionally; ``(new epoch, new version)``. Raises
        ControllerMovedError when another controller bumped it in between."""
        epoch, version = await self.controller_epoch()
        try:
            if version < 0:
                await self.client.create(CONTROLLER_EPOCH, str(epoch + 1).encode())
                return epoch + 1, 0
            stat = await self.client.set(CONTROLLER_EPOCH, str(epoch + 1).encode(),
                                         version=version)
        except (NodeExistsError, BadVersionError):
            raise ControllerMovedError("another controller bumped the controller epoch") \
                from None
        return epoch + 1, stat.version

    # ------------------------------------------------------------------ topics
    async def topic_names(self, watch: WatchFn | None = None) -> list[str]:
        return sorted(await self.client.get_children(TOPICS, watch=watch))

    async def get_topic(self, name: str, watch: WatchFn | None = None
                        ) -> TopicAssignment | None:
        found = await self.get_topic_versioned(name, watch)
        return None if found is None else found[0]

    async def get_topic_versioned(self, name: str, watch: WatchFn | None = None
                                  ) -> tuple[TopicAssignment, int] | None:
        """The topic's assignment and its node's version (for ``set_topic_assignment``);
        ``watch`` fires when the assignment changes or the topic goes."""
        path = topic_path(name)
        try:
            data, stat = await self.client.get(path, watch=watch)
        except NoNodeError:
            return None
        return decode_topic(name, data, path), stat.version

    async def set_topic_assignment(self, topic: TopicAssignment, version: int,
                                   epoch_version: int | None = None) -> None:
        """Replace a topic's assignment (partitions added, replicas moved), conditional on
        the version read: BadVersionError when it changed meanwhile, NoNodeError when the
        topic went. The controller passes its ``epoch_version``: fenced as its state writes."""
        await self._write(SetData(topic_path(topic.name), encode_topic(topic), version=version),
                          epoch_version)

    async def _write(self, op: MultiOp, epoch_version: int | None) -> None:
        """One write; with ``epoch_version``, only while the controller epoch node still
        has it (else ControllerMovedError), as every write of the controller is."""
        ops: list[MultiOp] = [op] if epoch_version is None else \
            [Check(CONTROLLER_EPOCH, epoch_version), op]
        try:
            await self.client.multi(ops)
        except (BadVersionError, NoNodeError, NodeExistsError) as exc:
            if epoch_version is not None and getattr(exc, "index", None) == 0:
                raise ControllerMovedError("the controller epoch moved on") from None
            raise

    async def get_topics(self, names: Sequence[str],
                         watch: Callable[[str], WatchFn] | None = None
                         ) -> dict[str, TopicAssignment]:
        """Assignments of ``names`` (the missing ones left out); ``watch(name)`` gives each
        topic's watch."""
        found = await gather_chunks(
            functools.partial(self.get_topic, n, None if watch is None else watch(n))
            for n in names)
        return {n: t for n, t in zip(names, found, strict=True) if t is not None}

    async def create_topic(self, topic: TopicAssignment, configs: dict[str, Any]) -> None:
        """Write a new topic's config and assignment in one transaction; NodeExistsError
        when the topic exists. A config left over from an old topic is replaced."""
        ops: list[MultiOp] = [Create(config_path(topic.name), encode_configs(configs),
                                     makepath=True),
                              Create(topic_path(topic.name), encode_topic(topic),
                                     makepath=True)]
        try:
            await self.client.multi(ops)
        except NodeExistsError as exc:
            if getattr(exc, "index", 1) != 0:
                raise
            await self.client.multi([SetData(config_path(topic.name), encode_configs(configs)),
                                     ops[1]])

    async def topic_configs(self, name: str) -> dict[str, str]:
        path = config_path(name)
        try:
            data, _ = await self.client.get(path)
        except NoNodeError:
            return {}
        return decode_configs(data, path)

    async def set_topic_configs(self, name: str, configs: dict[str, Any]) -> None:
        """Replace a topic's overrides and tell every broker (a config change notice)."""
        await self.client.multi([
            SetData(config_path(name), encode_configs(configs)),
            Create(f"{CONFIG_CHANGES}/{CONFIG_CHANGE_PREFIX}", _change_notice(name),
                   sequential=True)])

    async def config_changes(self, watch: WatchFn | None = None) -> list[str]:
        """Names of pending config change notices, oldest first."""
        return sorted(c for c in await self.client.get_children(CONFIG_CHANGES, watch=watch)
                      if c.startswith(CONFIG_CHANGE_PREFIX))

    async def config_change_topic(self, notice: str) -> str | None:
        try:
            data, _ = await self.client.get(f"{CONFIG_CHANGES}/{notice}")
        except NoNodeError:
            return None
        entity = data.decode(errors="replace")
        return entity.split("/", 1)[1] if entity.startswith("topics/") else None

    async def delete_config_change(self, notice: str) -> None:
        try:
            await self.client.delete(f"{CONFIG_CHANGES}/{notice}")
        except NoNodeError:
            pass

    # ------------------------------------------------------------------ partition states
    async def get_state(self, tp: TP, watch: WatchFn | None = None) -> LeaderIsr | None:
        path = state_path(*tp)
        try:
            data, stat = await self.client.get(path, watch=watch)
        except NoNodeError:
            return None
        return decode_state(data, stat.version, path)

    async def get_states(self, tps: Sequence[TP]) -> dict[TP, LeaderIsr]:
        found = await gather_chunks(functools.partial(self.get_state, tp) for tp in tps)
        return {tp: s for tp, s in zip(tps, found, strict=True) if s is not None}

    async def write_states(self, writes: Sequence[tuple[TP, LeaderIsr, int | None]],
                           epoch_version: int) -> dict[TP, LeaderIsr]:
        """Create (expected version None) or update (conditional on the expected version)
        partition states, fenced by the controller epoch; returns them with their new
        versions. Raises ControllerMovedError, or StateConflict naming the partitions whose
        state changed meanwhile (the writes of the others went through: ``written``)."""
        out: dict[TP, LeaderIsr] = {}
        conflicts: list[TP] = []
        for start in range(0, len(writes), MULTI_CHUNK):
            chunk = writes[start:start + MULTI_CHUNK]
            try:
                out.update(await self._write_chunk(chunk, epoch_version))
            except (BadVersionError, NodeExistsError, NoNodeError):
                # find the losers one by one, so one stale partition does not block the rest
                for item in chunk:
                    try:
                        out.update(await self._write_chunk([item], epoch_version))
                    except (BadVersionError, NodeExistsError, NoNodeError):
                        conflicts.append(item[0])
        if conflicts:
            raise StateConflict(conflicts, out)
        return out

    async def _write_chunk(self, chunk: Sequence[tuple[TP, LeaderIsr, int | None]],
                           epoch_version: int) -> dict[TP, LeaderIsr]:
        ops: list[MultiOp] = [Check(CONTROLLER_EPOCH, epoch_version)]
        for tp, state, expected in chunk:
            if expected is None:
                ops.append(Create(state_path(*tp), encode_state(state), makepath=True))
            else:
                ops.append(SetData(state_path(*tp), encode_state(state), version=expected))
        try:
            results = await self.client.multi(ops)
        except (BadVersionError, NoNodeError) as exc:
            if getattr(exc, "index", None) == 0:
                raise ControllerMovedError("the controller epoch moved on") from None
            raise
        written = {}
        for (tp, state, _), result in zip(chunk, results[1:], strict=True):
            version = result.version if isinstance(result, Stat) else 0
            written[tp] = LeaderIsr(state.leader, state.leader_epoch, state.isr,
                                    state.controller_epoch, version)
        return written

    # ------------------------------------------------------------------ reassignments
    async def reassignments(self, watch: WatchFn | None = None
                            ) -> tuple[dict[TP, list[int]], int]:
        """Pending reassignment targets and the node's version (-1: no node). ``watch``
        fires when the node is created, changed or deleted."""
        while True:
            try:
                data, stat = await self.client.get(REASSIGNMENTS, watch=watch)
            except NoNodeError:
                if await self.client.exists(REASSIGNMENTS, watch=watch) is None:
                    return {}, -1
                continue  # created in between: read it
            return decode_reassignments(data, REASSIGNMENTS), stat.version

    async def set_reassignments(self, targets: dict[TP, list[int]], version: int,
                                epoch_version: int | None = None) -> None:
        """Replace the pending reassignments, conditional on ``version`` (-1: the node must
        not exist); none left deletes the node. BadVersionError (or NodeExistsError,
        NoNodeError) when another writer came first; ``epoch_version`` fences the
        controller's writes."""
        await self._replace(REASSIGNMENTS, encode_reassignments(targets) if targets else None,
                            version, epoch_version)

    async def _replace(self, path: str, data: bytes | None, version: int,
                       epoch_version: int | None) -> None:
        if version < 0:
            if data is not None:
                await self._write(Create(path, data, makepath=True), epoch_version)
        elif data is not None:
            await self._write(SetData(path, data, version=version), epoch_version)
        else:
            await self._write(Delete(path, version=version), epoch_version)

    async def removed_replicas(self) -> tuple[set[tuple[int, TP]], int]:
        """``(broker, partition)`` replicas waiting to be deleted, and the node's version."""
        try:
            data, stat = await self.client.get(REMOVED_REPLICAS)
        except NoNodeError:
            return set(), -1
        return decode_removed_replicas(data, REMOVED_REPLICAS), stat.version

    async def set_removed_replicas(self, removed: set[tuple[int, TP]], version: int,
                                   epoch_version: int) -> None:
        """Replace them (the controller only: fenced by its epoch), conditional on
        ``version`` (-1: no node yet); none deletes the node."""
        await self._replace(REMOVED_REPLICAS,
                            encode_removed_replicas(removed) if removed else None, version,
                            epoch_version)

    # ------------------------------------------------------------------ deletion
    async def mark_for_deletion(self, topic: str) -> None:
        try:
            await self.client.create(f"{DELETE_TOPICS}/{topic}", makepath=True)
        except NodeExistsError:
            pass

    async def topics_marked_for_deletion(self, watch: WatchFn | None = None) -> list[str]:
        return sorted(await self.client.get_children(DELETE_TOPICS, watch=watch))

    async def delete_topic(self, topic: str, epoch_version: int) -> None:
        """Remove every node of a deleted topic, fenced by the controller epoch."""
        ops: list[MultiOp] = [Check(CONTROLLER_EPOCH, epoch_version)]
        for path, recursive in ((topic_path(topic), True), (config_path(topic), False),
                                (f"{DELETE_TOPICS}/{topic}", False)):
            if await self.client.exists(path) is not None:
                ops.append(Delete(path, recursive=recursive))
        try:
            await self.client.multi(ops)
        except (BadVersionError, NoNodeError) as exc:
            if getattr(exc, "index", None) == 0:
                raise ControllerMovedError("the controller epoch moved on") from None
            raise


def _change_notice(topic: str) -> bytes:
    return f"topics/{topic}".encode()
