"""SubscriptionState: positions, resets, pause state, epochs (pure, no broker)."""

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
    assert subs.awaiting_reset() == {"latest": [B]}


def test_reassign_keeps_state_of_partitions_still_assigned() -> None:
    subs = SubscriptionState("earliest")
    subs.assign([A, B])
    subs.seek(A, 7)
    subs.pause([A])
    subs.assign([A])
    assert subs.state(A).position == 7 and subs.paused() == {A}
    assert subs.assigned() == {A}
    with pytest.raises(ValueError, match="not assigned"):
        subs.state(B)


def test_assign_rejects_values_that_are_not_topic_partitions() -> None:
    subs = SubscriptionState("latest")
    with pytest.raises(TypeError, match="TopicPartition"):
        subs.assign(["t"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        subs.assign([("t", -1)])  # type: ignore[list-item]
    assert subs.assigned() == set()


def test_seek_rejects_negative_offsets_and_unassigned_partitions() -> None:
    subs = SubscriptionState("latest")
    subs.assign([A])
    with pytest.raises(ValueError, match=">= 0"):
        subs.seek(A, -1)
    with pytest.raises(ValueError, match="not assigned"):
        subs.seek(B, 0)
    assert subs.state(A).position is None


def test_requested_reset_groups_partitions_by_strategy_and_completes_once() -> None:
    subs = SubscriptionState("latest")
    subs.assign([A, B])
    subs.seek(B, 3)
    subs.request_reset(B, "earliest")
    assert subs.awaiting_reset() == {"latest": [A], "earliest": [B]}
    epoch = subs.state(B).epoch
    assert subs.complete_reset(B, epoch, 0)
    assert (subs.state(B).position, subs.state(B).fetch_position) == (0, 0)
    assert not subs.complete_reset(B, epoch, 99)  # already positioned
    assert subs.awaiting_reset() == {"latest": [A]}


def test_a_lookup_started_before_a_seek_does_not_override_it() -> None:
    subs = SubscriptionState("latest")
    subs.assign([A])
    subs.request_reset(A, "latest")
    stale_epoch = subs.state(A).epoch
    subs.seek(A, 5)
    subs.request_reset(A, "earliest")
    assert not subs.complete_reset(A, stale_epoch, 100)
    assert subs.state(A).position is None


def test_paused_partitions_are_not_fetchable_and_lag_needs_a_highwater() -> None:
    subs = SubscriptionState("latest")
    subs.assign([A])
    subs.seek(A, 5)
    assert subs.lag(A) is None
    subs.update_watermarks(A, 12, 0)
    assert subs.lag(A) == 7 and subs.state(A).last_stable_offset == 12
    subs.pause([A])
    assert subs.fetchable() == [] and subs.paused() == {A}
    subs.resume([A])
    assert subs.fetchable() == [A]
    subs.advance(A, 12)
    assert subs.lag(A) == 0
