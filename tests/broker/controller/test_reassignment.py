from klamm.broker.cluster.model import BrokerRegistration, LeaderIsr, TopicAssignment
from klamm.broker.controller import reassignment
from klamm.broker.controller.context import ControllerContext


def _ctx(live: set[int], leader: int, isr: list[int], replicas: list[int]) -> ControllerContext:
    ctx = ControllerContext(epoch=3)
    ctx.live = {b: BrokerRegistration(b, "h", 9000 + b, epoch=b) for b in live}
    ctx.topics["t"] = TopicAssignment("t", "id", {0: replicas})
    ctx.states[("t", 0)] = LeaderIsr(leader, 5, tuple(isr), 2, partition_epoch=8)
    return ctx


def test_while_moving_the_replicas_are_the_target_then_the_leaving_ones() -> None:
    assert reassignment.expanded([1, 2], [2, 3]) == [2, 3, 1]
    assert reassignment.expanded([1, 2, 3], [3, 2, 1]) == [3, 2, 1]
    assert reassignment.expanded([1], [4, 5, 6]) == [4, 5, 6, 1]


def test_a_move_finishes_only_once_every_target_replica_is_in_sync() -> None:
    ctx = _ctx({1, 2, 3}, 1, [1, 2], [2, 3, 1])
    assert reassignment.finishing(ctx, ("t", 0), [2, 3]) is None  # 3 is still catching up
    ctx.states[("t", 0)] = LeaderIsr(1, 5, (1, 2, 3), 2, partition_epoch=9)
    change = reassignment.finishing(ctx, ("t", 0), [2, 3])
    assert change is not None
    # the removed leader hands over to the first target replica in the ISR, in a new epoch
    assert (change.new.leader, change.new.leader_epoch, change.new.isr) == (2, 6, (2, 3))
    assert change.old is not None and change.old.partition_epoch == 9


def test_a_leader_that_stays_keeps_its_epoch_and_a_dead_target_blocks_the_handover() -> None:
    ctx = _ctx({1, 2, 3}, 2, [1, 2, 3], [2, 3, 1])
    change = reassignment.finishing(ctx, ("t", 0), [2, 3])
    assert change is not None and (change.new.leader, change.new.leader_epoch,
                                   change.new.isr) == (2, 5, (2, 3))
    ctx = _ctx({1}, 1, [1, 2, 3], [2, 3, 1])  # 2 and 3 in sync but not live now
    assert reassignment.finishing(ctx, ("t", 0), [2, 3]) is None
    grown = reassignment.growing(ctx, ("t", 0))
    assert grown is not None and grown.new.leader == 1 and grown.new.leader_epoch == 5
