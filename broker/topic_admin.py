"""TopicAdmin: creating, deleting and reconfiguring topics on behalf of any broker's clients.

Any broker may take an admin request. It validates it against what its metadata cache knows
(live brokers and racks, existing topics), writes the change to the coordination service and,
for creation and deletion, waits until the controller's UpdateMetadata shows the result (a
created topic's partitions all led; a deleted topic gone), up to the request's timeout. The
controller does the rest: states, leaders, LeaderAndIsr, StopReplica. Config changes leave a
notice every broker follows. Errors are the protocol's, with a message naming the offending
value. Single-threaded (event loop).
"""

from __future__ import annotations

import functools
import logging
import random
import uuid
from typing import Any

from klamm.protocol.config import ConfigError
from klamm.protocol.errors import ErrorCode, KlammError
from klamm.zk.errors import BadVersionError, NodeExistsError, NoNodeError

from .cluster.model import TopicAssignment
from .cluster.store import ClusterStore
from .config import BrokerConfig, TopicConfig, validate_topic_name
from .controller.assignment import (Assignment, added_partitions, assign_replicas,
                                    check_assignment)
from .metadata_cache import MetadataCache
from .topic_configs import TopicConfigs

log = logging.getLogger(__name__)

Result = tuple[ErrorCode, str | None]

# Partitions one request may add to a topic (as many as one CREATE_TOPICS may create).
MAX_ADDED_PARTITIONS = 10_000
# Tries of the conditional assignment write when another change to the topic won the race.
ASSIGNMENT_WRITE_TRIES = 5


class TopicAdmin:
    def __init__(self, config: BrokerConfig, store: ClusterStore, metadata: MetadataCache,
                 topic_configs: TopicConfigs) -> None:
        self.config = config
        self.store = store
        self.metadata = metadata
        self.topic_configs = topic_configs
        self._rng = random.Random()

    async def create(self, name: str, partitions: int, replication_factor: int,
                     configs: dict[str, Any], assignment: Assignment | None = None, *,
                     user: bool = True, validate_only: bool = False,
                     timeout_ms: int = 30_000) -> Result:
        problem = validate_topic_name(name)
        if problem is not None:
            return ErrorCode.INVALID_TOPIC, problem
        if user and name.startswith("__"):
            return ErrorCode.INVALID_TOPIC, (f"topic names starting with '__' are reserved for "
                                             f"internal topics: {name!r}")
        if self.metadata.has_topic(name):
            return ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists"
        live = {b: e.rack for b, e in self.metadata.brokers.items()}
        try:
            if assignment is not None:
                if partitions not in (-1, len(assignment)) or replication_factor not in (
                        -1, len(next(iter(assignment.values()), []))):
                    return ErrorCode.INVALID_REQUEST, (
                        "give either a replica assignment or a partition count and "
                        "replication factor, not both")
                check_assignment(assignment, set(live))
            else:
                if partitions < 1:
                    return ErrorCode.INVALID_PARTITIONS, (
                        f"num_partitions must be >= 1, got {partitions}")
                assignment = assign_replicas(partitions, replication_factor, live,
                                             rng=self._rng)
            overrides = TopicConfig.check_overrides(configs)
            TopicConfig.effective(self.config, overrides)
        except ConfigError as exc:
            return ErrorCode.INVALID_CONFIG, str(exc)
        except KlammError as exc:
            return exc.code, exc.detail
        if validate_only:
            return ErrorCode.NONE, None
        try:
            await self.store.create_topic(TopicAssignment(name, uuid.uuid4().hex, assignment),
                                          overrides)
        except NodeExistsError:
            deleting = name in await self.store.topics_marked_for_deletion()
            return ErrorCode.TOPIC_ALREADY_EXISTS, (
                f"topic {name!r} is still being deleted; retry once it is gone" if deleting
                else f"topic {name!r} already exists")
        self.topic_configs.overrides[name] = dict(overrides)
        log.info("topic %s created: %d partition(s), replicas %s", name, len(assignment),
                 _short(assignment))
        if timeout_ms > 0 and not await self.metadata.wait_until(
                lambda: self.metadata.all_led(name), timeout_ms / 1000):
            return ErrorCode.REQUEST_TIMED_OUT, (
                f"topic {name!r} was created, but not every partition had a leader within "
                f"{timeout_ms} ms; it will get them once the controller acts")
        return ErrorCode.NONE, None

    async def delete(self, name: str, timeout_ms: int = 30_000) -> Result:
        if not self.config.delete_topic_enable:
            return ErrorCode.TOPIC_DELETION_DISABLED, "delete.topic.enable=false on the brokers"
        if not self.metadata.has_topic(name):  # a topic being deleted is gone from it already
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist"
        await self.store.mark_for_deletion(name)
        log.info("topic %s marked for deletion", name)
        if timeout_ms > 0 and not await self.metadata.wait_until(
                lambda: not self.metadata.has_topic(name), timeout_ms / 1000):
            return ErrorCode.REQUEST_TIMED_OUT, (
                f"topic {name!r} is marked for deletion but still listed after {timeout_ms} ms")
        return ErrorCode.NONE, None

    async def create_partitions(self, name: str, count: int,
                                assignment: list[list[int]] | None = None, *,
                                validate_only: bool = False,
                                timeout_ms: int = 30_000) -> Result:
        """Grow topic ``name`` to ``count`` partitions (Kafka's CreatePartitions): the new
        ones get ``assignment`` (one replica list per new partition) or are placed as
        ``added_partitions`` places them. The assignment node is rewritten conditionally on
        the version read, so two concurrent growths cannot lose one another's partitions;
        the controller, watching the node, creates their states and leaders."""
        if validate_topic_name(name) is not None:  # no such topic can exist (as Kafka says)
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist"
        for _ in range(ASSIGNMENT_WRITE_TRIES):
            if name in await self.store.topics_marked_for_deletion():
                return ErrorCode.INVALID_TOPIC, f"topic {name!r} is being deleted"
            found = await self.store.get_topic_versioned(name)
            if found is None:
                return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist"
            current, version = found
            have = len(current.replicas)
            moving = sorted(p for t, p in await self.reassignments() if t == name)
            if moving:  # as Kafka: a moving partition's replica count is not the topic's
                return ErrorCode.REASSIGNMENT_IN_PROGRESS, (
                    f"partition(s) {moving} of {name!r} are being moved to other brokers; add "
                    f"partitions once that is done")
            if count <= have:
                return ErrorCode.INVALID_PARTITIONS, (
                    f"topic {name!r} has {have} partition(s); partitions can only be added, "
                    f"so the new count must be above {have}, got {count}")
            if count - have > MAX_ADDED_PARTITIONS:
                return ErrorCode.INVALID_PARTITIONS, (
                    f"adding {count - have} partitions at once is more than the "
                    f"{MAX_ADDED_PARTITIONS} one request may add")
            live = {b: e.rack for b, e in self.metadata.brokers.items()}
            try:
                if assignment is not None:
                    if len(assignment) != count - have:
                        return ErrorCode.INVALID_REPLICA_ASSIGNMENT, (
                            f"growing {name!r} from {have} to {count} partitions needs "
                            f"{count - have} replica list(s), one per new partition; got "
                            f"{len(assignment)}")
                    added = {have + i: list(r) for i, r in enumerate(assignment)}
                    check_assignment(added, set(live), first_partition=have,
                                     replication_factor=len(next(iter(
                                         current.replicas.values()))))
                else:
                    added = added_partitions(current.replicas, count, live)
            except KlammError as exc:
                return exc.code, exc.detail
            if validate_only:
                return ErrorCode.NONE, None
            listed = self.metadata.has_topic(name)  # gone from it later: deleted meanwhile
            grown = TopicAssignment(name, current.topic_id, {**current.replicas, **added})
            try:
                await self.store.set_topic_assignment(grown, version)
            except BadVersionError:
                continue  # another growth came first: judge this one against it
            except NoNodeError:
                return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist"
            log.info("topic %s: partitions %d..%d added, replicas %s", name, have, count - 1,
                     _short(added))
            if timeout_ms > 0 and not await self.metadata.wait_until(
                    functools.partial(self._added_led, name, have, count, listed),
                    timeout_ms / 1000):
                return ErrorCode.REQUEST_TIMED_OUT, (
                    f"partitions {have}..{count - 1} of {name!r} were added, but not every "
                    f"one had a leader within {timeout_ms} ms; they will get them once the "
                    f"controller acts")
            if listed and not self.metadata.has_topic(name):
                return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, (
                    f"topic {name!r} was deleted while partitions were being added")
            return ErrorCode.NONE, None
        return ErrorCode.INVALID_REQUEST, (
            f"the assignment of {name!r} kept changing while partitions were being added; "
            f"retry")

    def _added_led(self, name: str, first: int, count: int, listed: bool) -> bool:
        """Partitions ``first..count-1`` are led (the older ones may be offline: not this
        request's business), or the topic left the metadata it was ``listed`` in (deleted
        meanwhile: waiting cannot help)."""
        if not self.metadata.has_topic(name):
            return listed
        return all(self.metadata.live_leader(name, p) >= 0 for p in range(first, count))

    async def reassign_partitions(self, targets: dict[tuple[str, int], list[int] | None]
                                  ) -> dict[tuple[str, int], Result]:
        """Ask the controller (through the reassignment node it watches) to move each
        partition to its target replicas. A partition already moving is refused."""
        while True:
            stored, version = await self.store.reassignments()
            results = {tp: self._check_move(tp, replicas, stored)
                       for tp, replicas in targets.items()}
            valid = {tp: list(r) for tp, r in targets.items()
                     if r is not None and results[tp][0] is ErrorCode.NONE}
            if not valid:
                return results
            try:
                await self.store.set_reassignments({**stored, **valid}, version)
            except (BadVersionError, NodeExistsError, NoNodeError):
                continue  # another request came first: judge this one against it
            log.info("reassignment of %d partition(s) asked for: %s", len(valid),
                     ", ".join(f"{t}-{p} -> {r}" for (t, p), r in list(valid.items())[:6]))
            return results

    def _check_move(self, tp: tuple[str, int], replicas: list[int] | None,
                    moving: dict[tuple[str, int], list[int]]) -> Result:
        name = f"{tp[0]}-{tp[1]}"
        live = set(self.metadata.brokers)
        if tp in moving:
            return ErrorCode.REASSIGNMENT_IN_PROGRESS, (
                f"{name} is being moved to {moving[tp]} already; wait until that is done")
        if replicas is None:
            return ErrorCode.INVALID_REQUEST, (
                f"{name}: cancelling a reassignment is not supported in this version; let it "
                f"finish, then move the partition back")
        if validate_topic_name(tp[0]) is not None or self.metadata.partition(*tp) is None:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"{name} does not exist"
        if not replicas or len(set(replicas)) != len(replicas):
            return ErrorCode.INVALID_REPLICA_ASSIGNMENT, (
                f"{name}: the new replicas {replicas} must name at least one broker, each "
                f"once")
        if not set(replicas) <= live:
            return ErrorCode.INVALID_REPLICA_ASSIGNMENT, (
                f"{name}: broker(s) {sorted(set(replicas) - live)} are not registered (live "
                f"brokers: {sorted(live)})")
        return ErrorCode.NONE, None

    async def reassignments(self) -> dict[tuple[str, int], list[int]]:
        """Partitions moving now and their targets."""
        return (await self.store.reassignments())[0]

    async def exists(self, name: str) -> bool:
        if validate_topic_name(name) is not None:
            return False  # no such topic can exist: do not ask the coordination service
        return self.metadata.has_topic(name) or await self.store.get_topic(name) is not None

    async def overrides(self, name: str) -> dict[str, Any]:
        await self.topic_configs.load([name])
        return dict(self.topic_configs.overrides.get(name, {}))

    async def alter(self, name: str, changes: dict[str, Any],
                    validate_only: bool) -> TopicConfig | None:
        """Apply incremental changes (None removes an override); returns the new effective
        config (None with validate_only). Raises ConfigError naming bad keys."""
        current = await self.overrides(name)
        removed = set()
        for key, value in changes.items():
            if value is None:
                dotted = key.replace("_", ".").replace("-", ".")
                if dotted.replace(".", "_") not in TopicConfig.model_fields:
                    TopicConfig.check_overrides({key: ""})  # raises naming the unknown key
                removed.add(dotted)
        overrides = {k: v for k, v in current.items() if k not in removed}
        overrides.update(TopicConfig.check_overrides(
            {k: v for k, v in changes.items() if v is not None}))
        effective = TopicConfig.effective(self.config, overrides)
        if validate_only:
            return None
        await self.store.set_topic_configs(name, overrides)
        self.topic_configs.overrides[name] = overrides
        return effective


def _short(assignment: Assignment) -> str:
    items = [f"{p}:{','.join(map(str, r))}" for p, r in sorted(assignment.items())]
    return " ".join(items[:6]) + (" ..." if len(items) > 6 else "")
