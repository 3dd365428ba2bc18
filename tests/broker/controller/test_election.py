from klamm.broker.controller.election import (controlled_shutdown, offline_partition,
                                              preferred_replica)


def test_offline_election_takes_the_first_live_isr_member_in_assignment_order() -> None:
    assert offline_partition([1, 2, 3], isr=[3, 2], live={2, 3}, unclean_allowed=False) \
        == (2, [3, 2], False)


def test_no_live_isr_member_leaves_the_partition_offline_unless_unclean() -> None:
    assert offline_partition([1, 2, 3], isr=[1], live={2, 3}, unclean_allowed=False) \
        == (None, [1], False)
    assert offline_partition([1, 2, 3], isr=[1], live={2, 3}, unclean_allowed=True) \
        == (2, [2], True)


def test_controlled_shutdown_skips_every_stopping_broker() -> None:
    assert controlled_shutdown([1, 2, 3], isr=[1, 2, 3], live={1, 2, 3},
                               shutting_down={1, 2}) == (3, [3], False)
    assert controlled_shutdown([1, 2], isr=[1], live={1, 2}, shutting_down={1}) \
        == (None, [1], False)


def test_preferred_replica_only_when_live_and_in_sync() -> None:
    assert preferred_replica([1, 2], isr=[2, 1], live={1, 2}).leader == 1
    assert preferred_replica([1, 2], isr=[2], live={1, 2}).leader is None
    assert preferred_replica([1, 2], isr=[2, 1], live={2}).leader is None
