from klamm.broker.cluster.model import NO_LEADER, BrokerRegistration, LeaderIsr, TopicAssignment
from klamm.broker.controller import transitions
from klamm.broker.controller.context import ControllerContext
from klamm.protocol.cluster_api import AlterPartitionItem
from klamm.protocol.errors import ErrorCode


def _ctx(live: set[int], states: dict[int, tuple[int, list[int]]],
         replicas: list[int] | None = None) -> ControllerContext:
    ctx = ControllerContext(epoch=7)
    ctx.live = {b: BrokerRegistration(b, "h", 9000 + b, epoch=100 + b) for b in live}
    ctx.topics["t"] = TopicAssignment("t", "id", {p: list(replicas or [1, 2, 3])
                                                  for p in states})
    ctx.states = {("t", p): LeaderIsr(leader, 4, tuple(isr), 6, partition_epoch=10)
                  for p, (leader, isr) in states.items()}
    return ctx


def test_new_topic_partitions_are_led_by_their_first_live_replica() -> None:
    ctx = _ctx({2, 3}, {})
    ctx.topics["t"].replicas = {0: [1, 2, 3], 1: [3, 1, 2]}
    changes = transitions.new_topic_states(ctx, "t")
    assert [(c.tp, c.old, c.new.leader, c.new.isr, c.new.leader_epoch) for c in changes] == [
        (("t", 0), None, 2, (2, 3), 0), (("t", 1), None, 3, (3, 2), 0)]


def test_a_dead_leader_is_replaced_from_the_isr_with_a_new_leader_epoch() -> None:
    ctx = _ctx({2, 3}, {0: (1, [1, 2, 3]), 1: (2, [2, 1, 3])})
    changes = {c.tp[1]: c for c in transitions.brokers_failed(ctx, {1})}
    assert (changes[0].new.leader, changes[0].new.leader_epoch, changes[0].new.isr) == \
        (2, 5, (2, 3))
    assert (changes[1].new.leader, changes[1].new.leader_epoch, changes[1].new.isr) == \
        (2, 4, (2, 3))  # a dead follower leaves the ISR; the leader epoch stays
    assert all(c.old.partition_epoch == 10 and c.new.controller_epoch == 7
               for c in changes.values())


def test_the_last_isr_member_dying_leaves_the_partition_offline_and_its_isr_intact() -> None:
    ctx = _ctx({2, 3}, {0: (1, [1])})
    [change] = transitions.brokers_failed(ctx, {1})
    assert (change.new.leader, change.new.isr, change.unclean) == (NO_LEADER, (1,), False)
    ctx.states[("t", 0)] = change.new
    assert transitions.elect_offline(ctx) == []  # 2 and 3 are out of sync
    ctx.live[1] = BrokerRegistration(1, "h", 9001, epoch=200)
    [back] = transitions.elect_offline(ctx)
    assert (back.new.leader, back.new.isr) == (1, (1,))


def test_unclean_election_picks_a_live_out_of_sync_replica_and_says_so() -> None:
    ctx = _ctx({2, 3}, {0: (1, [1])})
    ctx.unclean_topics.add("t")
    [change] = transitions.brokers_failed(ctx, {1})
    assert (change.new.leader, change.new.isr, change.unclean) == (2, (2,), True)


def test_controlled_shutdown_moves_leaders_and_shrinks_isrs() -> None:
    ctx = _ctx({1, 2, 3}, {0: (1, [1, 2, 3]), 1: (2, [2, 1]), 2: (1, [1])})
    ctx.shutting_down.add(1)
    changes, remaining = transitions.controlled_shutdown(ctx, 1)
    got = {c.tp[1]: (c.new.leader, c.new.isr) for c in changes}
    assert got == {0: (2, (2, 3)), 1: (2, (2,))}
    assert remaining == [("t", 2)]


def test_preferred_election_follows_the_imbalance_threshold() -> None:
    ctx = _ctx({1, 2, 3}, {0: (2, [1, 2, 3]), 1: (1, [1, 2, 3]), 2: (1, [1, 2, 3]),
                           3: (1, [1, 2, 3])})
    assert transitions.preferred_elections(ctx, imbalance_ratio=0.3) == []
    [change] = transitions.preferred_elections(ctx, imbalance_ratio=0.1)
    assert (change.tp, change.new.leader, change.new.leader_epoch) == (("t", 0), 1, 5)


def _item(**kw: object) -> AlterPartitionItem:
    base = dict(topic="t", partition=0, leader_epoch=4, new_isr=[1, 2], partition_epoch=10)
    base.update(kw)
    return AlterPartitionItem(**base)  # type: ignore[arg-type]


def test_alter_partition_accepts_a_current_leaders_change_only() -> None:
    ctx = _ctx({1, 2, 3}, {0: (1, [1, 2, 3])})
    code, _, change = transitions.alter_partition(ctx, 1, 101, _item())
    assert code is ErrorCode.NONE and change is not None and change.new.isr == (1, 2)
    cases = [
        (dict(broker=1, epoch=99), {}, ErrorCode.STALE_BROKER_EPOCH),
        (dict(broker=2, epoch=102), {}, ErrorCode.NOT_LEADER_OR_FOLLOWER),
        (dict(broker=1, epoch=101), dict(leader_epoch=3), ErrorCode.FENCED_LEADER_EPOCH),
        (dict(broker=1, epoch=101), dict(partition_epoch=9), ErrorCode.INVALID_UPDATE_VERSION),
        (dict(broker=1, epoch=101), dict(new_isr=[2, 3]), ErrorCode.INVALID_REQUEST),
        (dict(broker=1, epoch=101), dict(partition=5), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
    ]
    for who, item, expected in cases:
        code, message, change = transitions.alter_partition(ctx, who["broker"], who["epoch"],
                                                            _item(**item))
        assert (code, change) == (expected, None), (item, message)


def test_alter_partition_refuses_to_add_a_dead_or_stopping_replica() -> None:
    ctx = _ctx({1, 2}, {0: (1, [1])})
    code, message, _ = transitions.alter_partition(ctx, 1, 101, _item(new_isr=[1, 3]))
    assert code is ErrorCode.INELIGIBLE_REPLICA and "[3]" in message
    ctx.shutting_down.add(2)
    code, _, _ = transitions.alter_partition(ctx, 1, 101, _item(new_isr=[1, 2]))
    assert code is ErrorCode.INELIGIBLE_REPLICA


def test_an_asked_preferred_election_moves_in_sync_partitions_and_says_why_not_others() -> None:
    # 0: led elsewhere, preferred in sync; 1: already preferred; 2: preferred out of sync;
    # 3: preferred dead
    ctx = _ctx({1, 2, 3}, {0: (2, [1, 2, 3]), 1: (1, [1, 2]), 2: (2, [2, 3]),
                           3: (3, [3, 2])})
    ctx.topics["t"].replicas[3] = [4, 3, 2]
    changes, outcomes = transitions.requested_elections(
        ctx, False, [("t", p) for p in range(4)] + [("t", 9), ("nope", 0)])
    assert [(c.tp, c.new.leader, c.new.leader_epoch, c.unclean) for c in changes] == [
        (("t", 0), 1, 5, False)]
    assert {tp: code for tp, (code, _) in outcomes.items()} == {
        ("t", 1): ErrorCode.ELECTION_NOT_NEEDED,
        ("t", 2): ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
        ("t", 3): ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
        ("t", 9): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ("nope", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    assert "not in the ISR [2, 3]" in outcomes[("t", 2)][1]
    assert "4 is not live" in outcomes[("t", 3)][1]
    # every partition: only those needing an election get an outcome
    changes, outcomes = transitions.requested_elections(ctx, False, None)
    assert [c.tp for c in changes] == [("t", 0)] and ("t", 1) not in outcomes


def test_an_asked_unclean_election_leads_offline_partitions_from_any_live_replica() -> None:
    ctx = _ctx({2, 3}, {0: (NO_LEADER, [1]), 1: (2, [2, 3]), 2: (NO_LEADER, [1])})
    ctx.topics["t"].replicas[2] = [1, 4]
    changes, outcomes = transitions.requested_elections(
        ctx, True, [("t", 0), ("t", 1), ("t", 2)])
    assert [(c.tp, c.new.leader, c.new.isr, c.unclean) for c in changes] == [
        (("t", 0), 2, (2,), True)]
    assert {tp: code for tp, (code, _) in outcomes.items()} == {
        ("t", 1): ErrorCode.ELECTION_NOT_NEEDED,
        ("t", 2): ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE}
