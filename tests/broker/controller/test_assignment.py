import random
from collections import Counter

import pytest

from klamm.broker.controller.assignment import (added_partitions, assign_replicas,
                                                check_assignment,
                                                parse_assignment, rack_alternated)
from klamm.protocol.errors import InvalidReplicaAssignmentError, InvalidReplicationFactorError


def test_rack_unaware_assignment_matches_kafkas() -> None:
    # Kafka's AdminTest.testReplicaAssignment: 5 brokers, 10 partitions, RF 3, start index 0
    assert assign_replicas(10, 3, {b: None for b in range(5)}, start_index=0) == {
        0: [0, 1, 2], 1: [1, 2, 3], 2: [2, 3, 4], 3: [3, 4, 0], 4: [4, 0, 1],
        5: [0, 2, 3], 6: [1, 3, 4], 7: [2, 4, 0], 8: [3, 0, 1], 9: [4, 1, 2]}


def test_rack_aware_assignment_matches_kafkas() -> None:
    racks = {0: "rack1", 1: "rack3", 2: "rack3", 3: "rack2", 4: "rack2", 5: "rack1"}
    assert rack_alternated(racks) == [0, 3, 1, 5, 4, 2]
    assert assign_replicas(7, 3, racks, start_index=0) == {
        0: [0, 3, 1], 1: [3, 1, 5], 2: [1, 5, 4], 3: [5, 4, 2], 4: [4, 2, 0],
        5: [2, 0, 3], 6: [0, 4, 2]}


def test_every_partition_spans_every_rack_and_leaders_spread_evenly() -> None:
    racks = {1: "a", 2: "a", 3: "b", 4: "b", 5: "c", 6: "c"}
    for seed in range(20):
        out = assign_replicas(60, 3, racks, rng=random.Random(seed))
        assert all(len({racks[b] for b in r}) == 3 for r in out.values())
        assert all(len(set(r)) == 3 for r in out.values())
        assert set(Counter(r[0] for r in out.values()).values()) == {10}


def test_random_start_differs_between_topics() -> None:
    brokers = {1: None, 2: None, 3: None}
    firsts = {assign_replicas(1, 3, brokers, rng=random.Random(s))[0][0] for s in range(30)}
    assert firsts == {1, 2, 3}


def test_too_few_brokers_says_how_many_are_alive() -> None:
    with pytest.raises(InvalidReplicationFactorError, match="larger than the 2 live broker"):
        assign_replicas(1, 3, {1: None, 2: None})


def test_racks_on_some_brokers_only_are_refused() -> None:
    with pytest.raises(InvalidReplicaAssignmentError, match=r"broker\(s\) \[2\] have no"):
        assign_replicas(1, 2, {1: "a", 2: None})


def test_explicit_assignments_are_parsed_and_checked() -> None:
    assert parse_assignment("1:2:3, 2:3:1") == {0: [1, 2, 3], 1: [2, 3, 1]}
    check_assignment({0: [1, 2], 1: [2, 1]}, {1, 2, 3})
    for bad, why in [({0: [1, 1]}, "twice"), ({0: [1, 2], 1: [1]}, "same number"),
                     ({0: [1, 9]}, r"broker\(s\) \[9\]"), ({1: [1]}, "numbered 0..0")]:
        with pytest.raises(InvalidReplicaAssignmentError, match=why):
            check_assignment(bad, {1, 2, 3})
    with pytest.raises(InvalidReplicaAssignmentError, match="joined by ':'"):
        parse_assignment("1:x")


def test_added_partitions_continue_the_round_robin_from_partition_zeros_leader() -> None:
    # as Kafka's AdminZkClient: start at partition 0's preferred leader, number on from the
    # partitions there, keep the replication factor; leaders stay spread over the brokers
    brokers = {b: None for b in (1, 2, 3)}
    existing = assign_replicas(3, 2, brokers, rng=random.Random(7))
    grown = {**existing, **added_partitions(existing, 9, brokers)}
    assert sorted(grown) == list(range(9))
    assert all(len(r) == 2 and len(set(r)) == 2 for r in grown.values())
    assert set(Counter(r[0] for r in grown.values()).values()) == {3}
    assert added_partitions(existing, 9, brokers) == assign_replicas(
        6, 2, brokers, start_index=existing[0][0] - 1, start_partition=3)
    with pytest.raises(InvalidReplicationFactorError, match="larger than the 1 live broker"):
        added_partitions(existing, 4, {1: None})


def test_replicas_of_added_partitions_are_checked_against_the_topic() -> None:
    check_assignment({3: [1, 2], 4: [2, 3]}, {1, 2, 3}, first_partition=3,
                     replication_factor=2)
    with pytest.raises(InvalidReplicaAssignmentError, match="numbered 3..3"):
        check_assignment({0: [1, 2]}, {1, 2, 3}, first_partition=3)
    with pytest.raises(InvalidReplicaAssignmentError, match="have 2 replica.s. each.*got 3"):
        check_assignment({3: [1, 2, 3]}, {1, 2, 3}, first_partition=3, replication_factor=2)
