"""Events a client hands to its user: watch events and session state changes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from enum import Enum
from typing import NamedTuple


class EventType(str, Enum):
    CREATED = "created"
    DELETED = "deleted"
    CHANGED = "changed"
    CHILD = "child"


class WatchedEvent(NamedTuple):
    type: EventType
    path: str


class SessionState(str, Enum):
    """CONNECTED: requests flow. SUSPENDED: connection lost, session may still be alive
    (ephemerals may still exist). EXPIRED: the session and its ephemerals are gone (a new
    session follows with CONNECTED). CLOSED: ``close()`` was called."""

    CONNECTED = "connected"
    SUSPENDED = "suspended"
    EXPIRED = "expired"
    CLOSED = "closed"


class WatchQueue:
    """A watch usable as a callback that is also an async iterator of its events.

    Pass it as ``watch=`` to any number of reads; every event it receives is queued in
    arrival order (one event per change, however many reads armed it for that path).
    ``await q.get()`` takes one; ``async for ev in q`` runs until cancelled. Watches are
    one-shot: re-arm by reading again with ``watch=q``. When the session expires its watches
    are gone and the queue hears nothing more: re-read and re-arm on the CONNECTED that
    follows EXPIRED (``session_events()`` or ``add_listener``).
    """

    def __init__(self) -> None:
        self._queue: asyncio.Queue[WatchedEvent] = asyncio.Queue()

    def __call__(self, event: WatchedEvent) -> None:
        self._queue.put_nowait(event)

    async def get(self, timeout: float | None = None) -> WatchedEvent:
        return await asyncio.wait_for(self._queue.get(), timeout)

    def pending(self) -> int:
        return self._queue.qsize()

    def __aiter__(self) -> AsyncIterator[WatchedEvent]:
        return self

    async def __anext__(self) -> WatchedEvent:
        return await self._queue.get()
