"""What brokers need from a coordination engine, as a typing.Protocol.

Brokers (registration, controller election, metadata with compare-and-set) depend on this
interface only, so an etcd-backed implementation can replace ``klamm.zk.ZkClient`` (which
satisfies it) without touching broker code:

- session/lease with liveness events: ``start``/``close``, ``session_id``, ``state``,
  ``add_listener``/``session_events`` (CONNECTED, SUSPENDED, EXPIRED, CLOSED);
- ephemeral registration: ``create(..., ephemeral=True)`` lives as long as the session;
- election: ``LeaderElection`` is written against this protocol;
- versioned compare-and-set: ``set``/``delete`` with ``version``, and atomic ``multi``
  with ``Check`` ops;
- watches: one-shot ``watch=`` callbacks on get/exists/get_children (sync or async
  functions; a ``WatchQueue`` is such a callback and also an async iterator of events).

``tests/zk/test_layering.py`` runs ``LeaderElection`` through a proxy exposing only these
members, so the recipe cannot quietly start depending on ``ZkClient`` specifics.

Errors are the ``klamm.zk.errors`` classes (NoNodeError, BadVersionError, ...).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from .events import SessionState, WatchedEvent
from .ops import MultiOp
from .tree import Stat

WatchFn = Callable[[WatchedEvent], Any]


@runtime_checkable
class Coordination(Protocol):
    session_id: int
    state: SessionState

    async def start(self, timeout: float | None = None) -> None: ...

    async def close(self) -> None: ...

    def add_listener(self, listener: Callable[[SessionState], Any]) -> None: ...

    def session_events(self) -> AsyncGenerator[SessionState, None]: ...

    async def create(self, path: str, data: bytes = b"", ephemeral: bool = False,
                     sequential: bool = False, makepath: bool = False) -> str: ...

    async def get(self, path: str, watch: WatchFn | None = None) -> tuple[bytes, Stat]: ...

    async def exists(self, path: str, watch: WatchFn | None = None) -> Stat | None: ...

    async def get_children(self, path: str, watch: WatchFn | None = None) -> list[str]: ...

    async def set(self, path: str, data: bytes, version: int = -1) -> Stat: ...

    async def delete(self, path: str, version: int = -1, recursive: bool = False) -> None: ...

    async def multi(self, ops: Sequence[MultiOp]) -> list[str | Stat | None]: ...
