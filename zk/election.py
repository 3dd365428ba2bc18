"""Leader election on one ephemeral node, the way Kafka elects its controller.

Whoever creates the ephemeral ``path`` is leader until the node goes (resign, session
expiry, or the process dying: then the node vanishes after the session timeout). The others
watch the node and race to create it when it is deleted. Leadership is lost exactly when the
node is no longer ours; a SUSPENDED connection does not count as loss (the session may still
be alive), but callers that must not act while unsure can check that ``client.state`` is
CONNECTED. Uses only the ``Coordination`` protocol, so it runs on any engine behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from .coordination import Coordination
from .errors import ConnectionLossError, NodeExistsError, NoNodeError, ZkError
from .events import SessionState, WatchedEvent


class LeaderElection:
    def __init__(self, client: Coordination, path: str, identifier: bytes = b"") -> None:
        self.client = client
        self.path = path
        self.identifier = identifier
        self.is_leader = False
        self._changed = asyncio.Event()
        self._lost = asyncio.Event()
        self._checks: set[asyncio.Task[None]] = set()
        client.add_listener(self._on_state)

    def _on_state(self, state: SessionState) -> None:
        if state in (SessionState.EXPIRED, SessionState.CLOSED):
            self._mark_lost()
        self._changed.set()

    def _on_event(self, event: WatchedEvent) -> None:
        self._changed.set()
        if self.is_leader:
            task = asyncio.get_running_loop().create_task(self._verify())
            self._checks.add(task)
            task.add_done_callback(self._checks.discard)

    async def _verify(self) -> None:
        """Check the node is still ours and re-arm the watch on it. A check cut off by a lost
        connection is retried (it waits for the re-attach): without it the leader would
        stop watching its own node."""
        backoff = 0.02
        while self.is_leader:
            try:
                stat = await self.client.exists(self.path, watch=self._on_event)
            except ConnectionLossError:
                await asyncio.sleep(backoff)  # expiry or close ends leadership, and the loop
                backoff = min(backoff * 2, 1.0)
                continue
            except ZkError:
                return
            if stat is None or stat.ephemeral_owner != self.client.session_id:
                self._mark_lost()
            return

    def _mark_lost(self) -> None:
        if self.is_leader:
            self.is_leader = False
            self._lost.set()

    async def campaign(self) -> None:
        """Return once this client is the leader (may wait for the current one to go).

        A request cut off by a lost connection is retried once re-attached: its outcome is
        unknown, but a node we did create is recognised as ours by its owner."""
        backoff = 0.02
        while True:
            self._changed.clear()
            try:
                try:
                    await self.client.create(self.path, self.identifier, ephemeral=True,
                                             makepath=True)
                    break
                except NodeExistsError:
                    pass
                stat = await self.client.exists(self.path, watch=self._on_event)
            except ConnectionLossError:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            if stat is not None and stat.ephemeral_owner == self.client.session_id:
                break  # ours from before a reconnect
            if stat is not None:
                await self._changed.wait()
        self.is_leader = True
        self._lost.clear()
        await self._verify()

    async def wait_lost(self) -> None:
        """Return when leadership won by ``campaign`` is lost."""
        await self._lost.wait()

    async def resign(self) -> None:
        """Give up leadership (deletes the node if it is still ours)."""
        if self.is_leader:
            self.is_leader = False
            self._lost.set()
            with contextlib.suppress(NoNodeError):
                stat = await self.client.exists(self.path)
                if stat is not None and stat.ephemeral_owner == self.client.session_id:
                    await self.client.delete(self.path, version=stat.version)

    async def leader(self) -> bytes | None:
        """The current leader's identifier, or None when there is none."""
        try:
            data, _ = await self.client.get(self.path)
        except NoNodeError:
            return None
        return data

    async def run(self, func: Callable[[], Awaitable[Any]]) -> None:
        """Forever: win, run ``func`` while leader (cancelled on loss), then campaign again."""
        while True:
            await self.campaign()
            work = asyncio.ensure_future(func())
            lost = asyncio.ensure_future(self.wait_lost())
            try:
                await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:  # run() itself is stopped: so is the leader's work
                lost.cancel()
                work.cancel()
                await asyncio.gather(work, lost, return_exceptions=True)
                raise
            lost.cancel()
            if not work.done():
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
            elif self.is_leader:
                await self.resign()
            if work.done() and not work.cancelled() and work.exception() is not None:
                raise work.exception()  # type: ignore[misc]
