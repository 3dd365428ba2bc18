"""A broker's membership of the cluster: reaching the coordination service, agreeing on the
cluster id, and the ephemeral registration that makes it live.

- The coordination service may be down when a broker starts: it retries with a growing backoff
  (up to 5 s) and says so in one log line per attempt round, never exits for it.
- The registration is ``/brokers/ids/<id>``. A node left by this broker's previous process
  (killed, its session not yet expired) is waited out: up to 1.5 session timeouts, the longest
  a dead session can linger. A node that outlives that wait belongs to a live broker with the
  same id, and this one refuses to start, naming it.
- The broker epoch is the registration's creation zxid; after a session expiry the broker
  registers again (a new epoch), so the controller sees it leave and come back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from klamm.zk.client import ZkClient
from klamm.zk.coordination import Coordination, WatchFn
from klamm.zk.errors import (BadArgumentsError, ConnectionLossError, NodeExistsError,
                             NotACoordinationServiceError, ZkError)
from klamm.zk.events import SessionState

from .model import BrokerRegistration
from .store import ClusterStore, broker_path

log = logging.getLogger(__name__)


class BrokerIdClash(RuntimeError):
    """Another live broker is registered with this broker's id."""


async def connect(hosts: str, session_timeout_ms: int, broker_id: int,
                  stopping: asyncio.Event) -> ZkClient | None:
    """A started client, retrying until the service answers; None if stopped meanwhile."""
    backoff = 0.1
    attempts = 0
    while not stopping.is_set():
        try:
            client = ZkClient(hosts, session_timeout_ms=session_timeout_ms,
                              client_id=f"broker-{broker_id}")
        except BadArgumentsError as exc:
            raise RuntimeError(f"zookeeper.connect={hosts!r}: {exc}") from None
        try:
            await client.start()
            if attempts:
                log.info("reached the coordination service at %s", hosts)
            return client
        except NotACoordinationServiceError as exc:  # retrying cannot change what it is
            raise RuntimeError(f"zookeeper.connect={hosts}: {exc}") from None
        except ZkError as exc:
            attempts += 1
            log.warning("cannot reach the coordination service at %s (%s); trying again "
                        "(is `klamm zk start` running there?)", hosts, exc)
        try:
            await asyncio.wait_for(stopping.wait(), backoff)
        except TimeoutError:
            pass
        backoff = min(backoff * 2, 5.0)
    return None


class Membership:
    def __init__(self, client: Coordination, store: ClusterStore,
                 registration: Callable[[], BrokerRegistration]) -> None:
        self.client = client
        self.store = store
        self._registration = registration
        self.epoch = -1
        self._expired = False
        self._task: asyncio.Task[None] | None = None
        self._on_new_session: Callable[[], Awaitable[None]] | None = None

    async def register(self) -> int:
        reg = self._registration()
        limit = max(reg.session_timeout_ms, 1000) * 1.5 / 1000
        started = time.monotonic()
        warned = False
        while True:
            try:
                self.epoch = await self.store.register_broker(reg)
                log.info("registered as broker %d at %s:%d (broker epoch %d)", reg.broker_id,
                         reg.host, reg.port, self.epoch)
                return self.epoch
            except NodeExistsError:
                pass
            found = await self.store.get_broker(reg.broker_id)
            if found is None:
                continue
            other, stat = found
            if stat.ephemeral_owner == self.client.session_id:  # ours (a retried create)
                self.epoch = stat.czxid
                return self.epoch
            limit = max(limit, other.session_timeout_ms * 1.5 / 1000)
            waited = time.monotonic() - started
            if waited > limit:
                raise BrokerIdClash(
                    f"broker.id={reg.broker_id} is already registered by a live broker at "
                    f"{other.host}:{other.port} (session {stat.ephemeral_owner:#x}); give this "
                    f"broker another broker.id or stop the other one")
            if not warned:
                log.warning("broker.id=%d is still registered by an earlier session (%s:%d); "
                            "waiting up to %.1f s for it to expire", reg.broker_id, other.host,
                            other.port, limit)
                warned = True
            gone = asyncio.Event()
            if await self.client.exists(broker_path(reg.broker_id),
                                        watch=_setter(gone)) is None:
                continue
            try:
                await asyncio.wait_for(gone.wait(), max(limit - waited, 0.05))
            except TimeoutError:
                pass

    def follow_session(self, on_new_session: Callable[[], Awaitable[None]]) -> None:
        """Register again (and call ``on_new_session``) whenever a session expiry is followed
        by a new session."""
        self._on_new_session = on_new_session
        self.client.add_listener(self._on_state)

    def _on_state(self, state: SessionState) -> None:
        if state is SessionState.EXPIRED:
            self._expired = True
            log.warning("coordination session expired: this broker counts as dead to the "
                        "cluster until it registers again")
        elif state is SessionState.CONNECTED and self._expired:
            self._expired = False
            if self._task is None or self._task.done():
                self._task = asyncio.get_running_loop().create_task(self._rejoin())

    async def _rejoin(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self.register()
                if self._on_new_session is not None:
                    await self._on_new_session()
                return
            except (ConnectionLossError, ZkError) as exc:
                log.warning("registering again failed (%s); retrying", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            except BrokerIdClash as exc:
                log.error("%s", exc)
                return

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass


def _setter(event: asyncio.Event) -> WatchFn:
    """A watch that sets ``event`` (bound now, not when the watch fires)."""
    def fire(_event: Any) -> None:
        event.set()
    return fire
