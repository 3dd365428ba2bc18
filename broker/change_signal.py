"""ChangeSignal: wait, without polling, until a condition on some state holds.

The owner of the state calls ``changed()`` after each change (from plain synchronous code);
``wait_until(condition, timeout)`` re-checks the condition after every change until it holds or
the timeout passes. Single-threaded (event loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class ChangeSignal:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def changed(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """True once ``condition()`` holds; False if it still does not after ``timeout`` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._event.wait(), remaining)
            except TimeoutError:
                return condition()
        return True
