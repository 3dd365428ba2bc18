"""ControllerChannel: the controller's requests to each live broker, one queue per broker.

Each broker has its own queue and sender task, so a slow or unreachable broker delays only
its own requests. Requests to one broker go out one at a time, in the order queued, and a
request is retried (every ``backoff``) until the broker answers or leaves the live set: a
broker either receives every decision in order or, having died, gets the full picture when it
registers again. A response's callback runs on the event loop. Channels end with the
controller's leadership.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any

from klamm.broker.cluster.model import BrokerRegistration
from klamm.client.connection import BrokerConnection
from klamm.client.errors import ClientError
from klamm.protocol.api import ApiKey
from klamm.protocol.cluster_api import (LeaderAndIsrRequest, StopReplicaRequest,
                                        UpdateMetadataRequest)
from klamm.protocol.wire import to_wire

from klamm.broker.peer_auth import PeerIdentity, open_peer

log = logging.getLogger(__name__)

ControllerRequest = LeaderAndIsrRequest | UpdateMetadataRequest | StopReplicaRequest
OnResponse = Callable[[Any], None]

API_OF: dict[type, ApiKey] = {LeaderAndIsrRequest: ApiKey.LEADER_AND_ISR,
                              UpdateMetadataRequest: ApiKey.UPDATE_METADATA,
                              StopReplicaRequest: ApiKey.STOP_REPLICA}


class BrokerChannel:
    def __init__(self, broker: BrokerRegistration, identity: PeerIdentity, timeout: float,
                 backoff: float) -> None:
        self.broker = broker
        self.identity = identity
        self.client_id = f"controller-{identity.broker_id}"
        self.timeout = timeout
        self.backoff = backoff
        self.queue: collections.deque[tuple[ControllerRequest, OnResponse | None]] = \
            collections.deque()
        self._wake = asyncio.Event()
        self._conn: BrokerConnection | None = None
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"controller-channel-{broker.broker_id}")

    def send(self, request: ControllerRequest, on_response: OnResponse | None) -> None:
        self.queue.append((request, on_response))
        self._wake.set()

    async def _run(self) -> None:
        failures = 0
        while True:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            request, on_response = self.queue[0]
            try:
                if self._conn is None or not self._conn.connected:
                    self._conn = await open_peer(
                        self.broker.host, self.broker.port, self.identity,
                        expect=self.broker.broker_id, client_id=self.client_id,
                        timeout=self.timeout)
                response = await self._conn.request(API_OF[type(request)], to_wire(request),
                                                    timeout=self.timeout)
            except ClientError as exc:
                failures += 1
                if failures == 1 or failures % 20 == 0:
                    log.warning("controller request to broker %d (%s:%d) failed: %s; retrying",
                                self.broker.broker_id, self.broker.host, self.broker.port, exc)
                if self._conn is not None:
                    self._conn.close()
                    self._conn = None
                await asyncio.sleep(self.backoff)
                continue
            failures = 0
            self.queue.popleft()
            body = response.body
            if isinstance(body, dict) and body.get("error_code"):
                log.warning("broker %d refused %s: %s", self.broker.broker_id,
                            type(request).__name__, body.get("error_message"))
            if on_response is not None:
                try:
                    on_response(body)
                except Exception:
                    log.exception("handling broker %d's answer failed", self.broker.broker_id)

    async def close(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass
        if self._conn is not None:
            self._conn.close()


class ControllerChannel:
    def __init__(self, identity: PeerIdentity, timeout_ms: int, backoff_ms: int) -> None:
        self.identity = identity
        self.timeout = timeout_ms / 1000
        self.backoff = backoff_ms / 1000
        self.channels: dict[int, BrokerChannel] = {}

    def add_broker(self, broker: BrokerRegistration) -> None:
        old = self.channels.get(broker.broker_id)
        if old is not None:
            if old.broker == broker:
                return
            asyncio.ensure_future(old.close())
        self.channels[broker.broker_id] = BrokerChannel(broker, self.identity, self.timeout,
                                                        self.backoff)

    def remove_broker(self, broker_id: int) -> None:
        old = self.channels.pop(broker_id, None)
        if old is not None:
            asyncio.ensure_future(old.close())

    def send(self, broker_id: int, request: ControllerRequest,
             on_response: OnResponse | None = None) -> None:
        channel = self.channels.get(broker_id)
        if channel is not None:
            channel.send(request, on_response)

    def pending(self) -> int:
        return sum(len(c.queue) for c in self.channels.values())

    async def close(self) -> None:
        channels = list(self.channels.values())
        self.channels.clear()
        await asyncio.gather(*(c.close() for c in channels))
