"""Parked long-poll fetches: answered once, by bytes, timer or wake, never into the append."""

from __future__ import annotations

import asyncio
import logging

import pytest

from klamm.broker.fetch_waiters import FetchWaiters


async def test_fires_once_min_bytes_are_appended_and_not_again() -> None:
    waiters = FetchWaiters()
    fired: list[str] = []
    waiters.park([("t", 0)], 100, 60, lambda: fired.append("a"))
    waiters.notify(("t", 0), 60)
    assert fired == [] and len(waiters) == 1
    waiters.notify(("t", 1), 1000)  # another partition feeds nobody here
    assert fired == []
    waiters.notify(("t", 0), 40)
    assert fired == ["a"] and len(waiters) == 0
    waiters.notify(("t", 0), 1000)
    assert fired == ["a"]


async def test_one_fetch_on_several_partitions_counts_all_of_them_and_fires_once() -> None:
    waiters = FetchWaiters()
    fired: list[int] = []
    waiters.park([("t", 0), ("t", 1)], 10, 60, lambda: fired.append(1))
    waiters.notify(("t", 0), 5)
    waiters.notify(("t", 1), 5)
    assert fired == [1] and len(waiters) == 0
    waiters.wake(("t", 0))
    assert fired == [1]


async def test_timer_fires_when_no_data_comes_and_data_after_it_changes_nothing() -> None:
    waiters = FetchWaiters()
    fired = asyncio.Event()
    calls: list[float] = []
    loop = asyncio.get_running_loop()
    start = loop.time()

    def answer() -> None:
        calls.append(loop.time() - start)
        fired.set()

    waiters.park([("t", 0)], 1, 0.05, answer)
    await asyncio.wait_for(fired.wait(), 10)
    assert calls[0] >= 0.045 and len(waiters) == 0
    waiters.notify(("t", 0), 100)
    assert len(calls) == 1


async def test_data_cancels_the_timer() -> None:
    waiters = FetchWaiters()
    calls: list[str] = []
    waiters.park([("t", 0)], 1, 0.05, lambda: calls.append("x"))
    waiters.notify(("t", 0), 1)
    await asyncio.sleep(0.15)  # the loop runs the 0.05 s timer (if armed) before this wakes
    assert calls == ["x"]


async def test_cancelled_fetch_is_never_answered() -> None:
    waiters = FetchWaiters()
    calls: list[str] = []
    parked = waiters.park([("t", 0)], 1, 0.05, lambda: calls.append("x"))
    parked.cancel()
    assert len(waiters) == 0 and not parked.pending
    waiters.notify(("t", 0), 10)
    await asyncio.sleep(0.15)  # the loop runs the 0.05 s timer (if armed) before this wakes
    assert calls == []


async def test_wake_all_answers_every_parked_fetch() -> None:
    waiters = FetchWaiters()
    calls: list[int] = []
    for i in range(5):
        waiters.park([("t", i % 2)], 1 << 20, 60, lambda i=i: calls.append(i))
    waiters.wake_all()
    assert sorted(calls) == [0, 1, 2, 3, 4] and len(waiters) == 0


async def test_a_failing_answer_never_fails_the_append(caplog: pytest.LogCaptureFixture) -> None:
    waiters = FetchWaiters()
    calls: list[str] = []

    def broken() -> None:
        raise OSError("disk went away")

    waiters.park([("t", 0)], 1, 60, broken)
    waiters.park([("t", 0)], 1, 60, lambda: calls.append("ok"))
    with caplog.at_level(logging.ERROR, logger="klamm.broker.fetch_waiters"):
        waiters.notify(("t", 0), 10)  # must not raise
    assert calls == ["ok"] and len(waiters) == 0
    assert "answering a parked fetch failed" in caplog.text


async def test_an_answer_may_park_a_new_fetch_on_the_same_partition() -> None:
    waiters = FetchWaiters()
    calls: list[str] = []

    def first() -> None:
        calls.append("first")
        waiters.park([("t", 0)], 1, 60, lambda: calls.append("second"))

    waiters.park([("t", 0)], 1, 60, first)
    waiters.notify(("t", 0), 1)
    assert calls == ["first"] and len(waiters) == 1  # the new one waits for new data
    waiters.notify(("t", 0), 1)
    assert calls == ["first", "second"]
