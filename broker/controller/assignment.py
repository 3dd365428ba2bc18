"""Replica assignment for new topics and checks of assignments users give: pure functions.

``assign_replicas`` is Kafka's algorithm (``AdminUtils.assignReplicasToBrokers``): the first
replica of each partition goes round robin from a random broker, so leaders spread evenly;
the others follow at a shift that grows once per round of the broker list, so followers of one
leader spread too. With racks (every broker has ``broker.rack``), the broker list is first
arranged rack-alternating (a broker of rack A, one of rack B, ...), and a replica is placed on a
rack that has none of the partition's replicas while such a rack exists, then on a broker that
has none. The same inputs and random generator give the same assignment.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from klamm.protocol.errors import InvalidReplicaAssignmentError, InvalidReplicationFactorError

Assignment = dict[int, list[int]]  # partition -> replicas, preferred leader first


def assign_replicas(num_partitions: int, replication_factor: int,
                    brokers: Mapping[int, str | None], *, rng: random.Random | None = None,
                    start_index: int = -1, start_partition: int = 0) -> Assignment:
    """Spread ``num_partitions`` x ``replication_factor`` replicas over ``brokers`` (id ->
    rack). Raises InvalidReplicationFactorError when there are too few brokers."""
    if replication_factor < 1:
        raise InvalidReplicationFactorError(
            f"replication factor must be at least 1, got {replication_factor}")
    if replication_factor > len(brokers):
        raise InvalidReplicationFactorError(
            f"replication factor {replication_factor} is larger than the {len(brokers)} "
            f"live broker(s) {sorted(brokers)}; start more brokers or lower it")
    if num_partitions < 1:
        return {}
    rng = rng or random.Random()
    racks = {b: r for b, r in brokers.items() if r is not None}
    if racks and len(racks) != len(brokers):
        missing = sorted(b for b, r in brokers.items() if r is None)
        raise InvalidReplicaAssignmentError(
            f"broker(s) {missing} have no broker.rack while others do; set broker.rack on "
            f"every broker or on none")
    if racks:
        return _rack_aware(num_partitions, replication_factor, racks, rng, start_index,
                           start_partition)
    return _rack_unaware(num_partitions, replication_factor, sorted(brokers), rng, start_index,
                         start_partition)


def _replica_index(first: int, shift: int, j: int, n: int) -> int:
    return (first + 1 + (shift + j) % (n - 1)) % n


def _rack_unaware(num_partitions: int, rf: int, brokers: list[int], rng: random.Random,
                  fixed_start: int, start_partition: int) -> Assignment:
    n = len(brokers)
    start = fixed_start if fixed_start >= 0 else rng.randrange(n)
    shift = fixed_start if fixed_start >= 0 else rng.randrange(n)
    out: Assignment = {}
    pid = max(0, start_partition)
    for _ in range(num_partitions):
        if pid > 0 and pid % n == 0:
            shift += 1
        first = (pid + start) % n
        replicas = [brokers[first]]
        replicas += [brokers[_replica_index(first, shift, j, n)] for j in range(rf - 1)]
        out[pid] = replicas
        pid += 1
    return out


def rack_alternated(racks: Mapping[int, str]) -> list[int]:
    """Brokers ordered rack by rack in turn (racks and brokers sorted)."""
    by_rack: dict[str, list[int]] = {}
    for broker, rack in sorted(racks.items()):
        by_rack.setdefault(rack, []).append(broker)
    queues = [by_rack[r] for r in sorted(by_rack)]
    out: list[int] = []
    i = 0
    while len(out) < len(racks):
        queue = queues[i % len(queues)]
        if queue:
            out.append(queue.pop(0))
        i += 1
    return out


def _rack_aware(num_partitions: int, rf: int, racks: Mapping[int, str], rng: random.Random,
                fixed_start: int, start_partition: int) -> Assignment:
    arranged = rack_alternated(racks)
    n = len(arranged)
    num_racks = len(set(racks.values()))
    start = fixed_start if fixed_start >= 0 else rng.randrange(n)
    shift = fixed_start if fixed_start >= 0 else rng.randrange(n)
    out: Assignment = {}
    pid = max(0, start_partition)
    for _ in range(num_partitions):
        if pid > 0 and pid % n == 0:
            shift += 1
        first = (pid + start) % n
        leader = arranged[first]
        replicas = [leader]
        racks_used = {racks[leader]}
        brokers_used = {leader}
        k = 0
        for _ in range(rf - 1):
            while True:
                broker = arranged[_replica_index(first, shift * num_racks, k, n)]
                rack = racks[broker]
                k += 1
                if ((rack not in racks_used or len(racks_used) == num_racks)
                        and (broker not in brokers_used or len(brokers_used) == n)):
                    replicas.append(broker)
                    racks_used.add(rack)
                    brokers_used.add(broker)
                    break
        out[pid] = replicas
        pid += 1
    return out


def added_partitions(existing: Mapping[int, list[int]], count: int,
                     brokers: Mapping[int, str | None]) -> Assignment:
    """Replicas for partitions ``len(existing)..count-1`` of a topic, placed as Kafka places
    them (``AdminZkClient.createNewPartitionsAssignment``): the round robin continues at the
    partition numbers added, from the broker of partition 0's preferred leader, with the
    topic's replication factor."""
    first = existing.get(0) or next(iter(existing.values()))
    ordered = sorted(brokers)
    start = next((i for i, b in enumerate(ordered) if b >= first[0]), 0)
    return assign_replicas(count - len(existing), len(first), brokers, start_index=start,
                           start_partition=len(existing))


def parse_assignment(text: str) -> Assignment:
    """``"1:2:3,2:3:1"`` (kafka-topics' --replica-assignment) -> {0: [1, 2, 3], 1: [2, 3, 1]}."""
    out: Assignment = {}
    for index, part in enumerate(text.split(",")):
        try:
            out[index] = [int(b) for b in part.strip().split(":")]
        except ValueError:
            raise InvalidReplicaAssignmentError(
                f"partition {index}'s replicas {part.strip()!r} must be broker ids joined by "
                f"':' (e.g. 1:2:3)") from None
    return out


def check_assignment(assignment: Mapping[int, list[int]], known_brokers: set[int], *,
                     first_partition: int = 0, replication_factor: int | None = None) -> None:
    """Refuse an explicit assignment with holes, repeats, unknown brokers or uneven sizes.
    Partitions added to a topic are numbered from ``first_partition`` and must have its
    ``replication_factor``."""
    if not assignment:
        raise InvalidReplicaAssignmentError("the assignment names no partitions")
    numbers = list(range(first_partition, first_partition + len(assignment)))
    if sorted(assignment) != numbers:
        raise InvalidReplicaAssignmentError(
            f"partitions must be numbered {numbers[0]}..{numbers[-1]}, got {sorted(assignment)}")
    sizes = {len(r) for r in assignment.values()}
    if len(sizes) != 1:
        raise InvalidReplicaAssignmentError(
            f"every partition must have the same number of replicas, got sizes {sorted(sizes)}")
    if replication_factor is not None and sizes != {replication_factor}:
        raise InvalidReplicaAssignmentError(
            f"the topic's partitions have {replication_factor} replica(s) each; the new ones "
            f"must too, got {sizes.pop()}")
    for partition, replicas in sorted(assignment.items()):
        if not replicas:
            raise InvalidReplicaAssignmentError(f"partition {partition} has no replicas")
        if len(set(replicas)) != len(replicas):
            raise InvalidReplicaAssignmentError(
                f"partition {partition} names a broker twice: {replicas}")
        unknown = sorted(set(replicas) - known_brokers)
        if unknown:
            raise InvalidReplicaAssignmentError(
                f"partition {partition} names broker(s) {unknown}, which are not registered "
                f"(live brokers: {sorted(known_brokers)})")
