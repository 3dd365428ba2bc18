"""RequestMemoryPool: grants while memory is left, queues the rest in order, and wakes each
waiter with its reservation already made."""

from __future__ import annotations

from klamm.broker.request_memory import RequestMemoryPool


def test_grants_while_memory_is_left_even_past_the_limit_by_one_frame() -> None:
    pool = RequestMemoryPool(10)
    assert pool.try_reserve(6) and pool.try_reserve(6)  # 4 left, then -2: one frame over
    assert pool.reserved == 12
    assert not pool.try_reserve(1)


def test_waiters_are_granted_in_order_with_their_reservation_made() -> None:
    pool = RequestMemoryPool(10)
    assert pool.try_reserve(10)
    woken: list[tuple[str, int]] = []
    pool.wait("a", 4, lambda n: woken.append(("a", n)))
    pool.wait("b", 3, lambda n: woken.append(("b", n)))
    assert not pool.try_reserve(1)  # nobody overtakes the queue, even when memory frees
    pool.release(4)
    assert woken == [("a", 4)] and pool.available == 0  # nothing left: b still waits
    pool.release(1)
    assert woken == [("a", 4), ("b", 3)] and pool.available == -2 and pool.waiting == 0
    pool.release(4)
    pool.release(3)
    pool.release(5)
    assert pool.available == 10 and pool.try_reserve(1)


def test_a_cancelled_waiter_is_never_woken() -> None:
    pool = RequestMemoryPool(1)
    assert pool.try_reserve(1)
    woken: list[int] = []
    pool.wait("gone", 1, woken.append)
    pool.cancel("gone")
    pool.release(1)
    assert woken == [] and pool.available == 1


def test_unbounded_grants_everything() -> None:
    pool = RequestMemoryPool(-1)
    assert all(pool.try_reserve(1 << 30) for _ in range(10))
    assert pool.reserved == 0
