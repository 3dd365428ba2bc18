"""The controller: one broker, elected through the coordination service, that decides every
partition's leader and ISR and tells the brokers (Kafka's ``KafkaController``).

Election: the election recipe on the ephemeral ``/controller`` node; the winner then bumps
the controller epoch conditionally, and every state it writes is fenced by that epoch's version
(``ClusterStore``), so a controller that lost its session cannot change anything even before it
notices. On winning it reads the whole state back (brokers, topics, partition states,
deletions), sends every live broker the full picture, and finishes what a predecessor left
half done: partitions without a live leader are elected, dead brokers leave ISRs, topics
without states get them, deletions resume. So a controller failover loses no pending change:
every decision is in the coordination service before any broker hears of it.

Events (coordination watches, requests from brokers, timers) go through one queue and are
handled one at a time by one task; each computes its transitions with the pure functions of
``transitions``, writes them conditionally, applies them to the ``ControllerContext`` once
written, and queues LeaderAndIsr / UpdateMetadata / StopReplica per broker on the channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from klamm.broker.cluster.model import LeaderIsr, TopicAssignment
from klamm.broker.cluster.store import (CONTROLLER, ClusterStore, ControllerMovedError,
                                        StateConflict)
from klamm.broker.config import BrokerConfig
from klamm.broker.metrics import BrokerMetrics
from klamm.broker.peer_auth import PeerIdentity
from klamm.protocol.cluster_api import (AlterPartitionRequest, AlterPartitionResponse,
                                        AlterPartitionResult, ControlledShutdownRequest,
                                        ControlledShutdownResponse, LeaderAndIsrResponse,
                                        PartitionRef, StopReplicaRequest, StopReplicaResponse)
from klamm.protocol.api import ApiKey
from klamm.protocol.errors import ErrorCode, NotControllerError
from klamm.protocol.wire import MalformedMessage, from_wire, to_wire
from klamm.zk.coordination import Coordination
from klamm.zk.election import LeaderElection
from klamm.zk.errors import BadVersionError, NodeExistsError, NoNodeError, ZkError

from . import reassignment, transitions
from .channel import ControllerChannel
from .context import TP, ControllerContext, StateChange
from .requests import RequestBatch

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------- events
@dataclass(slots=True)
class Event:
    name = "event"


@dataclass(slots=True)
class BrokersChanged(Event):
    name = "broker_change"


@dataclass(slots=True)
class TopicsChanged(Event):
    name = "topic_change"


@dataclass(slots=True)
class PartitionsAdded(Event):
    topic: str = ""
    name = "partition_modification"


@dataclass(slots=True)
class ReassignmentsChanged(Event):
    name = "partition_reassignment"


@dataclass(slots=True)
class ReassignmentCheck(Event):
    name = "partition_reassignment_check"


@dataclass(slots=True)
class DeletionsChanged(Event):
    name = "topic_deletion"


@dataclass(slots=True)
class DeletionConfirmed(Event):
    topic: str = ""
    broker: int = -1
    name = "topic_deletion_confirmed"


@dataclass(slots=True)
class RemovalConfirmed(Event):
    broker: int = -1
    partitions: list[TP] = field(default_factory=list)
    name = "replica_removal_confirmed"


@dataclass(slots=True)
class TopicConfigChanged(Event):
    topic: str = ""
    name = "topic_config_change"


@dataclass(slots=True)
class PreferredLeaderCheck(Event):
    name = "preferred_leader_check"


@dataclass(slots=True)
class AlterPartitionReceived(Event):
    request: AlterPartitionRequest | None = None
    reply: "asyncio.Future[AlterPartitionResponse] | None" = None
    name = "alter_partition"


@dataclass(slots=True)
class ElectLeadersReceived(Event):
    unclean: bool = False
    partitions: list[TP] | None = None
    reply: "asyncio.Future[dict[TP, tuple[ErrorCode, str]]] | None" = None
    name = "elect_leaders"


@dataclass(slots=True)
class ControlledShutdownReceived(Event):
    request: ControlledShutdownRequest | None = None
    reply: "asyncio.Future[ControlledShutdownResponse] | None" = None
    name = "controlled_shutdown"


@dataclass(slots=True)
class _Generation:
    number: int = 0
    events: "asyncio.Queue[Event]" = field(default_factory=asyncio.Queue)
    # One watch function per topic's assignment node: the coordination client keeps a
    # function once per node, so re-arming never piles up watches.
    topic_watches: dict[str, Callable[[Any], None]] = field(default_factory=dict)
    reassignments_watch: Callable[[Any], None] | None = None
    current: Event | None = None  # the event being handled


class Controller:
    def __init__(self, config: BrokerConfig, client: Coordination, store: ClusterStore,
                 metrics: BrokerMetrics, identity: PeerIdentity,
                 unclean_of: Callable[[dict[str, str]], bool]) -> None:
        self.config = config
        self.broker_id = config.broker_id
        self.client = client
        self.store = store
        self.metrics = metrics
        self.identity = identity
        self.cluster_id = identity.cluster_id
        self._unclean_of = unclean_of
        self.election = LeaderElection(client, CONTROLLER, store.controller_data(self.broker_id))
        self.ctx = ControllerContext()
        self.channel: ControllerChannel | None = None
        self.active = False
        self._gen = _Generation()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None
        self.elected = asyncio.Event()  # set while active (tests and benchmarks wait on it)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._campaign(), name="controller")

    async def stop(self) -> None:
        """Stop taking part; resign if controller (the others elect at once)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        try:
            await asyncio.wait_for(self.election.resign(), 2.0)
        except (ZkError, TimeoutError, OSError):
            pass

    async def _campaign(self) -> None:
        while True:
            try:
                await self.election.run(self._lead)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("controller %d failed; standing for election again",
                              self.broker_id)
                await asyncio.sleep(self.config.controller_retry_backoff_ms / 1000)

    async def _lead(self) -> None:
        gen = self._gen = _Generation(self._gen.number + 1)
        try:
            epoch, version = await self.store.increment_controller_epoch()
        except ControllerMovedError:
            log.warning("broker %d won /controller but another controller bumped the epoch; "
                        "standing again", self.broker_id)
            return
        self.ctx = ControllerContext(epoch=epoch, epoch_version=version)
        self.channel = ControllerChannel(self.identity, self.config.controller_socket_timeout_ms,
                                         self.config.controller_retry_backoff_ms)
        self.active = True
        self.metrics.active_controller.set(1)
        log.info("broker %d is the controller (epoch %d)", self.broker_id, epoch)
        if self.config.auto_leader_rebalance_enable:
            self._timer = asyncio.get_running_loop().create_task(self._preferred_timer(gen))
        try:
            await self._failover(gen)
            self.elected.set()
            while True:
                gen.current = await gen.events.get()
                await self._process(gen, gen.current)
                gen.current = None
        except ControllerMovedError:
            log.warning("controller %d was replaced (controller epoch moved on); resigning",
                        self.broker_id)
        finally:
            self.active = False
            self.elected.clear()
            self.metrics.active_controller.set(0)
            if self._timer is not None:
                self._timer.cancel()
            await self.channel.close()
            self._fail_pending(gen)

    def _fail_pending(self, gen: _Generation) -> None:
        """Answer NOT_CONTROLLER to every request waiting in the queue, and to the one whose
        handling the end of this controllership cut short."""
        waiting = [gen.current] if gen.current is not None else []
        gen.current = None
        while not gen.events.empty():
            waiting.append(gen.events.get_nowait())
        for event in waiting:
            if isinstance(event, AlterPartitionReceived) and event.reply is not None:
                if not event.reply.done():
                    event.reply.set_result(AlterPartitionResponse(
                        int(ErrorCode.NOT_CONTROLLER), "the controller moved"))
            elif isinstance(event, ElectLeadersReceived) and event.reply is not None:
                if not event.reply.done():
                    event.reply.set_exception(NotControllerError("the controller moved"))
            elif isinstance(event, ControlledShutdownReceived) and event.reply is not None:
                if not event.reply.done():
                    event.reply.set_result(ControlledShutdownResponse(
                        int(ErrorCode.NOT_CONTROLLER), "the controller moved"))

    # ------------------------------------------------------------------ entry points
    def _enqueue(self, gen: _Generation, event: Event) -> None:
        if gen is self._gen and self.active:
            gen.events.put_nowait(event)

    def _watcher(self, gen: _Generation, make: Callable[[], Event]) -> Callable[[Any], None]:
        return lambda _event: self._enqueue(gen, make())

    def _topic_watch(self, gen: _Generation) -> Callable[[str], Callable[[Any], None]]:
        """The watch on each topic's assignment node (Kafka's partition modifications
        handler): partitions added to a topic reach the controller through it."""
        def watch(topic: str) -> Callable[[Any], None]:
            fn = gen.topic_watches.get(topic)
            if fn is None:
                fn = gen.topic_watches[topic] = self._watcher(gen,
                                                              lambda: PartitionsAdded(topic))
            return fn
        return watch

    async def alter_partition(self, request: AlterPartitionRequest) -> AlterPartitionResponse:
        if not self.active:
            return AlterPartitionResponse(int(ErrorCode.NOT_CONTROLLER),
                                          f"broker {self.broker_id} is not the controller")
        reply: asyncio.Future[AlterPartitionResponse] = \
            asyncio.get_running_loop().create_future()
        self._enqueue(self._gen, AlterPartitionReceived(request, reply))
        return await reply

    async def controlled_shutdown(self, request: ControlledShutdownRequest
                                  ) -> ControlledShutdownResponse:
        if not self.active:
            return ControlledShutdownResponse(int(ErrorCode.NOT_CONTROLLER),
                                              f"broker {self.broker_id} is not the controller")
        reply: asyncio.Future[ControlledShutdownResponse] = \
            asyncio.get_running_loop().create_future()
        self._enqueue(self._gen, ControlledShutdownReceived(request, reply))
        return await reply

    async def elect_leaders(self, unclean: bool, partitions: list[TP] | None
                            ) -> dict[TP, tuple[ErrorCode, str]]:
        """An operator's election (ElectLeaders): the outcome per partition once the
        elections are written. Raises NotControllerError on a broker that is not it."""
        if not self.active:
            raise NotControllerError(f"broker {self.broker_id} is not the controller")
        reply: asyncio.Future[dict[TP, tuple[ErrorCode, str]]] = \
            asyncio.get_running_loop().create_future()
        self._enqueue(self._gen, ElectLeadersReceived(unclean, partitions, reply))
        return await reply

    async def answer(self, api: int, body: Any) -> Any:
        """A broker-to-controller request from this same broker, without the network."""
        if api == ApiKey.CONTROLLED_SHUTDOWN:
            return to_wire(await self.controlled_shutdown(
                from_wire(ControlledShutdownRequest, body)))
        if api == ApiKey.ALTER_PARTITION:
            return to_wire(await self.alter_partition(from_wire(AlterPartitionRequest, body)))
        raise ValueError(f"api {api} is not for the controller")

    def topic_config_changed(self, topic: str) -> None:
        self._enqueue(self._gen, TopicConfigChanged(topic))

    async def _preferred_timer(self, gen: _Generation) -> None:
        interval = self.config.leader_imbalance_check_interval_seconds
        while True:
            await asyncio.sleep(interval)
            self._enqueue(gen, PreferredLeaderCheck())

    # ------------------------------------------------------------------ processing
    async def _process(self, gen: _Generation, event: Event) -> None:
        self.metrics.controller_events.labels(event=event.name).inc()
        backoff = self.config.controller_retry_backoff_ms / 1000
        while True:
            try:
                await self._handle(gen, event)
                break
            except ControllerMovedError:
                raise
            except ZkError as exc:  # the coordination service is away: try this again
                log.warning("controller event %s failed (%s); retrying in %.0f ms", event.name,
                            exc, backoff * 1000)
                await asyncio.sleep(backoff)
        self.metrics.offline_partitions.set(len(self.ctx.offline()))

    async def _handle(self, gen: _Generation, event: Event) -> None:
        match event:
            case BrokersChanged():
                await self._brokers_changed(gen)
            case TopicsChanged():
                await self._topics_changed(gen)
            case PartitionsAdded(topic=topic):
                await self._partitions_added(gen, topic)
            case ReassignmentsChanged():
                await self._reassignments_changed(gen)
            case RemovalConfirmed(broker=broker, partitions=partitions):
                await self._update_removed(set(), {(broker, tp) for tp in partitions})
            case ReassignmentCheck():
                batch = RequestBatch(self.broker_id)
                await self._finish_reassignments(batch)
                self._send(gen, batch)
            case DeletionsChanged():
                await self._deletions_changed(gen)
            case DeletionConfirmed(topic=topic, broker=broker):
                await self._deletion_confirmed(topic, broker)
            case TopicConfigChanged(topic=topic):
                await self._topic_config_changed(topic)
            case PreferredLeaderCheck():
                await self._preferred_check()
            case AlterPartitionReceived(request=request, reply=reply):
                assert request is not None and reply is not None
                response = await self._alter_partition(request)
                if not reply.done():
                    reply.set_result(response)
            case ElectLeadersReceived(unclean=unclean, partitions=partitions, reply=reply):
                assert reply is not None
                outcomes = await self._elect_leaders(unclean, partitions)
                if not reply.done():
                    reply.set_result(outcomes)
            case ControlledShutdownReceived(request=request, reply=reply):
                assert request is not None and reply is not None
                moved = await self._controlled_shutdown(request)
                if not reply.done():
                    reply.set_result(moved)

    def _send(self, gen: _Generation, batch: RequestBatch) -> None:
        assert self.channel is not None
        for broker, request in batch.build(self.ctx, self.cluster_id):
            callback: Callable[[Any], None] | None = None
            if isinstance(request, StopReplicaRequest) and any(p.delete for p in
                                                               request.partitions):
                callback = self._deletion_callback(gen, broker, request)
            elif type(request).__name__ == "LeaderAndIsrRequest":
                callback = self._leader_and_isr_callback(broker)
            self.channel.send(broker, request, callback)

    def _leader_and_isr_callback(self, broker: int) -> Callable[[Any], None]:
        def done(body: Any) -> None:
            try:
                response = from_wire(LeaderAndIsrResponse, body)
            except MalformedMessage:
                return
            bad = [p for p in response.partitions if p.error_code not in
                   (0, ErrorCode.STALE_CONTROLLER_EPOCH)]
            if bad:
                log.warning("broker %d could not apply %d partition(s), e.g. %s-%d: %s",
                            broker, len(bad), bad[0].topic, bad[0].partition,
                            bad[0].error_message)
        return done

    def _deletion_callback(self, gen: _Generation, broker: int,
                           request: StopReplicaRequest) -> Callable[[Any], None]:
        # a topic's deletion is confirmed by a request that deletes every partition of it
        # (a replica moved away is deleted alone: that confirms nothing about the topic)
        named: dict[str, set[int]] = {}
        for p in request.partitions:
            if p.delete:
                named.setdefault(p.topic, set()).add(p.partition)
        ctx = self.ctx
        topics = {t for t, ps in named.items() if t in ctx.deleting and t in ctx.topics
                  and ps >= set(ctx.topics[t].replicas)}

        def done(body: Any) -> None:
            try:
                response = from_wire(StopReplicaResponse, body)
            except MalformedMessage:
                return
            if response.error_code:
                return
            failed = {p.topic for p in response.partitions if p.error_code}
            for topic in topics - failed:
                self._enqueue(gen, DeletionConfirmed(topic, broker))
            deleted = [(p.topic, p.partition) for p in response.partitions
                       if not p.error_code and (broker, (p.topic, p.partition)) in
                       self.ctx.removed]
            if deleted:
                self._enqueue(gen, RemovalConfirmed(broker, deleted))
        return done

    async def _apply(self, changes: list[StateChange], batch: RequestBatch, *,
                     is_new: bool = False) -> dict[TP, LeaderIsr]:
        """Write ``changes``; apply and announce those written; re-read the losers."""
        if not changes:
            return {}
        ctx = self.ctx
        writes = [(c.tp, c.new, None if c.old is None else c.old.partition_epoch)
                  for c in changes]
        try:
            written = await self.store.write_states(writes, ctx.epoch_version)
        except StateConflict as conflict:
            written = conflict.written
            log.warning("%d partition state(s) changed under the controller, e.g. %s; "
                        "re-reading them", len(conflict.failed), conflict.failed[0])
            for tp, state in (await self.store.get_states(conflict.failed)).items():
                ctx.states[tp] = state
                batch.add_leader_and_isr(ctx, tp)
        for change in changes:
            stored = written.get(change.tp)
            if stored is None:
                continue
            ctx.apply(change, stored)
            if change.unclean:
                self.metrics.unclean_elections.inc()
                log.error("%s-%d: unclean leader election: broker %d leads from outside the "
                          "ISR %s (%s); records committed by the previous ISR but missing on "
                          "it are lost", change.tp[0], change.tp[1], stored.leader,
                          list(change.old.isr) if change.old else [], change.reason)
            elif change.old is not None and change.leader_changed:
                log.info("%s-%d: leader %d -> %d (epoch %d, ISR %s): %s", change.tp[0],
                         change.tp[1], change.old.leader, stored.leader, stored.leader_epoch,
                         list(stored.isr), change.reason)
            batch.add_leader_and_isr(ctx, change.tp, is_new=is_new, unclean=change.unclean)
        return written

    # ------------------------------------------------------------------ failover
    async def _failover(self, gen: _Generation) -> None:
        ctx = self.ctx
        store = self.store
        assert self.channel is not None
        ctx.live = await store.live_brokers(watch=self._watcher(gen, BrokersChanged))
        names = await store.topic_names(watch=self._watcher(gen, TopicsChanged))
        ctx.topics = await store.get_topics(names, watch=self._topic_watch(gen))
        configs = await asyncio.gather(*(store.topic_configs(n) for n in ctx.topics))
        ctx.unclean_topics = {n for n, c in zip(ctx.topics, configs, strict=True)
                              if self._unclean_of(c)}
        all_tps = [(n, p) for n, t in ctx.topics.items() for p in t.replicas]
        ctx.states = await store.get_states(all_tps)
        marked = await store.topics_marked_for_deletion(
            watch=self._watcher(gen, DeletionsChanged))
        for reg in ctx.live.values():
            self.channel.add_broker(reg)
        batch = RequestBatch(self.broker_id)
        batch.metadata_full_to = set(ctx.live)
        batch.full_leader_and_isr = set(ctx.live)
        for tp in ctx.partitions():
            if tp in ctx.states:
                batch.add_leader_and_isr(ctx, tp)
        gone = {b for s in ctx.states.values() for b in s.isr if b not in ctx.live}
        await self._apply(transitions.brokers_failed(ctx, gone), batch)
        await self._apply(transitions.elect_offline(ctx), batch)
        for name in ctx.topics:
            await self._apply(transitions.new_topic_states(ctx, name), batch, is_new=True)
        await self._start_deletions(marked, batch)
        stored, _ = await store.reassignments(watch=self._reassignments_watch(gen))
        for tp, target in stored.items():  # what a predecessor left moving goes on
            await self._start_reassignment(tp, target, batch)
        await self._finish_reassignments(batch)
        await self._update_removed(set(), set())  # read back what is still to delete
        self._send_removals(set(ctx.live), batch)
        log.info("controller %d resumed: %d live broker(s), %d topic(s), %d partition(s), "
                 "%d offline", self.broker_id, len(ctx.live), len(ctx.topics), len(ctx.states),
                 len(ctx.offline()))
        self._send(gen, batch)

    # ------------------------------------------------------------------ brokers
    async def _brokers_changed(self, gen: _Generation) -> None:
        ctx = self.ctx
        assert self.channel is not None
        now = await self.store.live_brokers(watch=self._watcher(gen, BrokersChanged))
        old = ctx.live
        dead = {b for b, r in old.items() if b not in now or now[b].epoch != r.epoch}
        born = {b for b, r in now.items() if b not in old or old[b].epoch != r.epoch}
        if not dead and not born:
            return
        batch = RequestBatch(self.broker_id, metadata_all=True)
        if dead:
            log.info("controller: broker(s) %s left", sorted(dead))
            for b in dead:
                ctx.live.pop(b, None)
                ctx.shutting_down.discard(b)
                self.channel.remove_broker(b)
            await self._apply(transitions.brokers_failed(ctx, dead), batch)
        if born:
            log.info("controller: broker(s) %s joined", sorted(born))
            for b in born:
                ctx.live[b] = now[b]
                self.channel.add_broker(now[b])
                batch.metadata_full_to.add(b)
                batch.full_leader_and_isr.add(b)
                for tp in ctx.partitions_on(b):
                    if tp in ctx.states:
                        batch.add_leader_and_isr(ctx, tp, [b])
            await self._apply(transitions.elect_offline(ctx), batch)
            self._send_removals(born, batch)
            for topic, pending in ctx.deleting.items():
                for b in born & pending:
                    for partition in ctx.topics[topic].replicas:
                        batch.add_stop_replica(b, (topic, partition), -1, delete=True)
        self._send(gen, batch)

    # ------------------------------------------------------------------ topics
    async def _topics_changed(self, gen: _Generation) -> None:
        ctx = self.ctx
        names = await self.store.topic_names(watch=self._watcher(gen, TopicsChanged))
        new = [n for n in names if n not in ctx.topics]
        if not new:
            return
        found = await self.store.get_topics(new, watch=self._topic_watch(gen))
        configs = await asyncio.gather(*(self.store.topic_configs(n) for n in found))
        for (name, topic), conf in zip(found.items(), configs, strict=True):
            ctx.topics[name] = topic
            if self._unclean_of(conf):
                ctx.unclean_topics.add(name)
        existing = await self.store.get_states([(n, p) for n, t in found.items()
                                                for p in t.replicas])
        ctx.states.update(existing)
        batch = RequestBatch(self.broker_id)
        for name in found:
            await self._apply(transitions.new_topic_states(ctx, name), batch, is_new=True)
            log.info("controller: created topic %s (%d partition(s))", name,
                     len(found[name].replicas))
        self._send(gen, batch)

    async def _partitions_added(self, gen: _Generation, topic: str) -> None:
        """A topic's assignment node changed (re-armed here): start its new partitions.
        Partitions are only ever added; a changed replica list of an existing partition is
        not a reassignment this controller performs, so its own stays and is logged."""
        ctx = self.ctx
        if topic not in ctx.topics:
            return  # not created here yet (the topic watch starts it) or gone
        stored = await self.store.get_topic(topic, watch=self._topic_watch(gen)(topic))
        if stored is None or topic in ctx.deleting:
            if stored is not None:
                log.warning("controller: partitions added to topic %s while it is being "
                            "deleted are ignored", topic)
            return
        known = ctx.topics[topic].replicas
        added = {p: r for p, r in stored.replicas.items() if p not in known}
        changed = sorted(p for p, r in stored.replicas.items() if p in known and r != known[p])
        if changed:
            log.warning("controller: topic %s's stored replicas of partition(s) %s differ from "
                        "the controller's; reassignment is not supported, the controller's "
                        "stay", topic, changed[:10])
        if not added:
            return
        ctx.topics[topic] = TopicAssignment(topic, ctx.topics[topic].topic_id,
                                            {**known, **added})
        ctx.states.update(await self.store.get_states([(topic, p) for p in added]))
        batch = RequestBatch(self.broker_id)
        await self._apply(transitions.new_topic_states(ctx, topic), batch, is_new=True)
        log.info("controller: topic %s grew to %d partition(s)", topic,
                 len(ctx.topics[topic].replicas))
        self._send(gen, batch)

    async def _topic_config_changed(self, topic: str) -> None:
        ctx = self.ctx
        if topic not in ctx.topics:
            return
        unclean = self._unclean_of(await self.store.topic_configs(topic))
        if unclean == (topic in ctx.unclean_topics):
            return
        if unclean:
            ctx.unclean_topics.add(topic)
            batch = RequestBatch(self.broker_id)
            await self._apply(transitions.elect_offline(
                ctx, [tp for tp in ctx.offline() if tp[0] == topic]), batch)
            self._send(self._gen, batch)
        else:
            ctx.unclean_topics.discard(topic)

    async def _deletions_changed(self, gen: _Generation) -> None:
        marked = await self.store.topics_marked_for_deletion(
            watch=self._watcher(gen, DeletionsChanged))
        batch = RequestBatch(self.broker_id)
        await self._start_deletions(marked, batch)
        self._send(gen, batch)

    async def _start_deletions(self, marked: list[str], batch: RequestBatch) -> None:
        ctx = self.ctx
        for topic in marked:
            if topic in ctx.deleting:
                continue
            assignment = ctx.topics.get(topic)
            if assignment is None:
                await self.store.delete_topic(topic, ctx.epoch_version)
                continue
            replicas = {b for r in assignment.replicas.values() for b in r}
            ctx.deleting[topic] = set(replicas)
            for tp in [tp for tp in ctx.reassigning if tp[0] == topic]:
                del ctx.reassigning[tp]
            await self._forget_reassignments(topic=topic)  # a move of a deleted topic is moot
            batch.deleted_topics.add(topic)
            for b in replicas & set(ctx.live):
                for partition in assignment.replicas:
                    batch.add_stop_replica(b, (topic, partition), -1, delete=True)
            waiting = sorted(replicas - set(ctx.live))
            log.info("controller: deleting topic %s%s", topic,
                     f" (waits for broker(s) {waiting} to return)" if waiting else "")

    async def _deletion_confirmed(self, topic: str, broker: int) -> None:
        ctx = self.ctx
        pending = ctx.deleting.get(topic)
        if pending is None:
            return
        pending.discard(broker)
        if not pending:
            await self.store.delete_topic(topic, ctx.epoch_version)
            ctx.remove_topic(topic)
            log.info("controller: topic %s deleted from every replica", topic)

    # ------------------------------------------------------------------ reassignments
    def _reassignments_watch(self, gen: _Generation) -> Callable[[Any], None]:
        if gen.reassignments_watch is None:
            gen.reassignments_watch = self._watcher(gen, ReassignmentsChanged)
        return gen.reassignments_watch

    async def _reassignments_changed(self, gen: _Generation) -> None:
        stored, _ = await self.store.reassignments(watch=self._reassignments_watch(gen))
        batch = RequestBatch(self.broker_id)
        for tp, target in stored.items():
            if tp not in self.ctx.reassigning:
                await self._start_reassignment(tp, target, batch)
        await self._finish_reassignments(batch)
        self._send(gen, batch)

    async def _start_reassignment(self, tp: TP, target: list[int], batch: RequestBatch) -> None:
        """Step 1 (see ``reassignment``): grow the replicas to target + leaving ones; the
        added brokers start fetching. Repeating it (a new controller) changes nothing."""
        ctx = self.ctx
        if tp not in ctx.states or tp[0] in ctx.deleting or not ctx.replicas(tp):
            log.warning("controller: reassignment of %s-%d dropped: the partition is gone",
                        *tp)
            await self._forget_reassignments([tp])
            return
        current = ctx.replicas(tp)
        grown = reassignment.expanded(current, target)
        if grown != current:
            await self._write_replicas(tp, grown)
            log.info("controller: %s-%d moving from replicas %s to %s", tp[0], tp[1], current,
                     target)
        change = reassignment.growing(ctx, tp)
        if change is not None:
            await self._apply([change], batch)
        # only now: an event retried after a coordination error starts it again
        ctx.reassigning[tp] = list(target)

    async def _finish_reassignments(self, batch: RequestBatch) -> None:
        """Step 2 for every move whose target replicas are all in sync: ISR and leader
        within the target, then the replicas become the target and the others delete."""
        ctx = self.ctx
        finished: list[TP] = []
        for tp, target in list(ctx.reassigning.items()):
            if tp[0] in ctx.deleting or tp not in ctx.states:
                del ctx.reassigning[tp]
                finished.append(tp)
                continue
            change = reassignment.finishing(ctx, tp, target)
            if change is None or tp not in await self._apply([change], batch):
                continue
            removed = [b for b in ctx.replicas(tp) if b not in target]
            # first durably: a removed broker that is down (or dies before it deletes) is
            # told again when it returns, by this controller or the next
            await self._update_removed({(b, tp) for b in removed}, set())
            await self._write_replicas(tp, target)
            pending = {b for b, t in ctx.removed if t == tp}  # also an earlier try's
            for b in pending:
                batch.leader_and_isr.get(b, {}).pop(tp, None)
            self._send_removals(pending, batch)
            batch.add_leader_and_isr(ctx, tp)
            del ctx.reassigning[tp]
            finished.append(tp)
            log.info("controller: %s-%d moved to replicas %s (leader %d); %s delete theirs",
                     tp[0], tp[1], target, ctx.states[tp].leader, removed or "none")
        if finished:
            await self._forget_reassignments(finished)

    def _send_removals(self, brokers: set[int], batch: RequestBatch) -> None:
        """StopReplica (delete) for the removed replicas of these brokers that are live; one
        that is a replica again (moved back since) is not deleted."""
        ctx = self.ctx
        for broker, tp in sorted(ctx.removed):
            if broker in brokers and broker in ctx.live and broker not in ctx.replicas(tp):
                batch.add_stop_replica(broker, tp, -1, delete=True)

    async def _update_removed(self, add: set[tuple[int, TP]],
                              drop: set[tuple[int, TP]]) -> None:
        """Change the replicas waiting to be deleted, in the coordination service first."""
        ctx = self.ctx
        while True:
            stored, version = await self.store.removed_replicas()
            # one moved back since (a replica again) has nothing to delete there
            wanted = {(b, tp) for b, tp in stored - drop if b not in ctx.replicas(tp)} | add
            if wanted != stored:
                try:
                    await self.store.set_removed_replicas(wanted, version,
                                                          ctx.epoch_version)
                except (BadVersionError, NoNodeError, NodeExistsError):
                    continue
            ctx.removed = wanted
            return

    async def _write_replicas(self, tp: TP, replicas: list[int]) -> None:
        """Set one partition's replicas in the topic's assignment node (conditionally; a
        concurrent growth of the topic is read again and kept), then in the context (the
        topic watch this write fires is handled after this event: it finds nothing new)."""
        ctx = self.ctx
        while True:
            found = await self.store.get_topic_versioned(tp[0])
            if found is None:
                return
            stored, version = found
            stored.replicas[tp[1]] = list(replicas)
            try:
                await self.store.set_topic_assignment(stored, version, ctx.epoch_version)
                break
            except BadVersionError:
                continue
        ctx.topics[tp[0]].replicas[tp[1]] = list(replicas)

    async def _forget_reassignments(self, tps: list[TP] | None = None,
                                    topic: str | None = None) -> None:
        """Remove finished (or moot) moves: ``tps``, or every one of ``topic``."""
        while True:
            stored, version = await self.store.reassignments()
            left = {tp: r for tp, r in stored.items()
                    if not (tp in (tps or ()) or tp[0] == topic)}
            if left == stored:
                return
            try:
                await self.store.set_reassignments(left, version, self.ctx.epoch_version)
                return
            except (BadVersionError, NoNodeError, NodeExistsError):
                continue

    # ------------------------------------------------------------------ leaders
    async def _preferred_check(self) -> None:
        ratio = self.config.leader_imbalance_per_broker_percentage / 100
        batch = RequestBatch(self.broker_id)
        await self._apply(transitions.preferred_elections(self.ctx, ratio), batch)
        self._send(self._gen, batch)

    async def _elect_leaders(self, unclean: bool, partitions: list[TP] | None
                             ) -> dict[TP, tuple[ErrorCode, str]]:
        changes, outcomes = transitions.requested_elections(self.ctx, unclean, partitions)
        batch = RequestBatch(self.broker_id)
        written = await self._apply(changes, batch)
        for change in changes:
            outcomes[change.tp] = (ErrorCode.NONE, "") if change.tp in written else (
                ErrorCode.INVALID_UPDATE_VERSION, "the partition changed meanwhile; retry")
        self._send(self._gen, batch)
        log.info("controller: %s election asked for %s partition(s): %d elected",
                 "unclean" if unclean else "preferred",
                 "every" if partitions is None else len(partitions), len(written))
        return outcomes

    async def _alter_partition(self, request: AlterPartitionRequest) -> AlterPartitionResponse:
        ctx = self.ctx
        results: list[AlterPartitionResult] = []
        changes: list[StateChange] = []
        for item in request.partitions:
            code, message, change = transitions.alter_partition(ctx, request.broker_id,
                                                                request.broker_epoch, item)
            if change is not None:
                changes.append(change)
                continue
            results.append(self._result(item.topic, item.partition, code, message))
        batch = RequestBatch(self.broker_id)
        written = await self._apply(changes, batch)
        # the leader learns its new ISR from the answer; the others from UpdateMetadata
        batch.leader_and_isr.clear()
        for change in changes:
            if change.tp in written:
                results.append(self._result(*change.tp, ErrorCode.NONE, ""))
            else:
                results.append(self._result(*change.tp, ErrorCode.INVALID_UPDATE_VERSION,
                                            "the partition changed meanwhile"))
        self._send(self._gen, batch)
        if any(tp in ctx.reassigning for tp in written):  # a target replica may be in sync
            self._enqueue(self._gen, ReassignmentCheck())
        return AlterPartitionResponse(0, None, results)

    def _result(self, topic: str, partition: int, code: ErrorCode,
                message: str) -> AlterPartitionResult:
        state = self.ctx.states.get((topic, partition))
        if state is None:
            return AlterPartitionResult(topic, partition, int(code), message or None)
        return AlterPartitionResult(topic, partition, int(code), message or None, state.leader,
                                    state.leader_epoch, list(state.isr), state.partition_epoch)

    async def _controlled_shutdown(self, request: ControlledShutdownRequest
                                   ) -> ControlledShutdownResponse:
        ctx = self.ctx
        broker = request.broker_id
        registered = ctx.live.get(broker)
        if registered is None or registered.epoch != request.broker_epoch:
            return ControlledShutdownResponse(
                int(ErrorCode.STALE_BROKER_EPOCH),
                f"broker {broker} epoch {request.broker_epoch} is not registered")
        ctx.shutting_down.add(broker)
        changes, remaining = transitions.controlled_shutdown(ctx, broker)
        batch = RequestBatch(self.broker_id)
        written = await self._apply(changes, batch)
        batch.leader_and_isr.pop(broker, None)
        for tp in written:
            batch.add_stop_replica(broker, tp, -1, delete=False)
        self._send(self._gen, batch)
        log.info("controller: controlled shutdown of broker %d moved %d partition(s); %d "
                 "stay on it", broker, len(written), len(remaining))
        return ControlledShutdownResponse(0, None, [PartitionRef(t, p) for t, p in remaining])
