import pytest

from klamm.client.consumer.subscription import SubscriptionState
from klamm.client.structs import TopicPartition

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


def test_seek_sets_both_positions_and_bumps_the_epoch() -> None:
    subs = SubscriptionState("latest")
    subs.assign([A, B])
    epoch = subs.state(A).epoch
    subs.seek(A, 42)
    st = subs.state(A)
    assert (st.position, st.fetch_position, st.epoch) == (42, 42, epoch + 1)
    assert subs.fetchable() == [A]
    assert subs.needs_reset() == [B]


def test_reassign_keeps_state_of_partitions_still_assigned() -> None:
    subs = SubscriptionState("earliest")
    subs.assign([A, B])
    subs.seek(A, 7)
    subs.assign([A])
    assert subs.state(A).position == 7
    with pytest.raises(ValueError, match="not assigned"):
        subs.state(B)


def test_paused_partitions_are_not_fetchable_and_lag_needs_a_highwater() -> None:
    subs = SubscriptionState("latest")
    subs.assign([A])
    subs.seek(A, 5)
    assert subs.lag(A) is None
    subs.state(A).highwater = 12
    assert subs.lag(A) == 7
    subs.state(A).paused = True
    assert subs.fetchable() == []
