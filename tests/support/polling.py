"""Waiting for a condition with a deadline: the tests' alternative to sleeping."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def until(predicate: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0,
                interval: float = 0.005) -> float:
    """Poll ``predicate`` (plain or async) until it is true; the seconds that took.

    Raises AssertionError after ``timeout`` seconds, so a test fails instead of hanging.
    """
    start = time.monotonic()
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not reached within {timeout}s")
        await asyncio.sleep(interval)
