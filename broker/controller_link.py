"""ControllerLink: this broker's requests to whichever broker is the controller now.

The controller is known from the metadata cache (every UpdateMetadata names it); the link
keeps one connection to it and reopens it when the controller moves. When this broker is the
controller itself, requests are handed to it directly. ``AlterPartitionQueue``
sends leaders' ISR changes through it, batched: everything queued while a request is out goes
in the next one, and a change waits (retrying every ``backoff``) while no controller answers.
Single-threaded (event loop).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from klamm.client.connection import BrokerConnection
from klamm.client.errors import ClientError
from klamm.protocol.api import ApiKey
from klamm.protocol.cluster_api import (AlterPartitionItem, AlterPartitionRequest,
                                        AlterPartitionResponse, AlterPartitionResult)
from klamm.protocol.errors import ErrorCode
from klamm.protocol.wire import MalformedMessage, from_wire, to_wire

from .metadata_cache import MetadataCache
from .peer_auth import PeerIdentity, open_peer

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]


class ControllerUnavailable(Exception):
    """No controller is known or it did not answer."""


class LocalController(Protocol):
    active: bool

    async def answer(self, api: int, body: Any) -> Any: ...


class ControllerLink:
    def __init__(self, identity: PeerIdentity, metadata: MetadataCache, timeout_ms: int) -> None:
        self.identity = identity
        self.broker_id = identity.broker_id
        self.metadata = metadata
        self.timeout = timeout_ms / 1000
        self._conn: BrokerConnection | None = None
        self._conn_to: tuple[int, str, int] | None = None
        self.local: LocalController | None = None

    async def request(self, api: ApiKey, body: Any, timeout: float | None = None) -> Any:
        """Send to the current controller; raises ControllerUnavailable."""
        if self.local is not None and self.local.active:
            return await self.local.answer(api, body)
        controller = self.metadata.controller
        if controller is None:
            raise ControllerUnavailable("no controller is known yet")
        target = (controller.node_id, controller.host, controller.port)
        try:
            if self._conn is None or not self._conn.connected or self._conn_to != target:
                if self._conn is not None:
                    self._conn.close()
                self._conn = await open_peer(
                    controller.host, controller.port, self.identity, expect=controller.node_id,
                    client_id=f"broker-{self.broker_id}", timeout=self.timeout)
                self._conn_to = target
            response = await self._conn.request(api, body, timeout=timeout or self.timeout)
        except ClientError as exc:
            raise ControllerUnavailable(f"controller {controller.node_id} at "
                                        f"{controller.host}:{controller.port}: {exc}") from None
        return response.body

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


Callback = Callable[[AlterPartitionResult], None]


class AlterPartitionQueue:
    """Leaders' ISR changes on their way to the controller; one per partition at a time."""

    def __init__(self, link: ControllerLink, broker_epoch: Callable[[], int],
                 backoff_ms: int) -> None:
        self.link = link
        self.broker_epoch = broker_epoch
        self.backoff = backoff_ms / 1000
        self._queued: dict[PartitionKey, tuple[AlterPartitionItem, Callback]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_warning = 0.0

    def __len__(self) -> int:
        return len(self._queued)

    def submit(self, item: AlterPartitionItem, callback: Callback) -> None:
        self._queued[(item.topic, item.partition)] = (item, callback)
        self._wake.set()

    def cancel(self, key: PartitionKey) -> None:
        self._queued.pop(key, None)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="alter-partition")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._queued:
                continue
            batch = dict(self._queued)
            request = AlterPartitionRequest(self.link.broker_id, self.broker_epoch(),
                                            [item for item, _ in batch.values()])
            try:
                body = from_wire(AlterPartitionResponse,
                                 await self.link.request(ApiKey.ALTER_PARTITION,
                                                         to_wire(request)))
                if body.error_code:
                    raise ControllerUnavailable(
                        f"{ErrorCode(body.error_code).name}: {body.error_message}")
            except (ControllerUnavailable, MalformedMessage) as exc:
                now = time.monotonic()
                if now - self._last_warning > 10:
                    log.warning("ISR change of %d partition(s) not accepted yet (%s); "
                                "retrying every %.0f ms", len(batch), exc, self.backoff * 1000)
                    self._last_warning = now
                await asyncio.sleep(self.backoff)
                self._wake.set()
                continue
            for result in body.partitions:
                key = (result.topic, result.partition)
                queued = self._queued.get(key)
                sent = batch.get(key)
                if queued is None or sent is None or queued[0] is not sent[0]:
                    continue  # cancelled or replaced meanwhile: its newer version goes next
                del self._queued[key]
                try:
                    queued[1](result)
                except Exception:
                    log.exception("applying the ISR change of %s-%d failed", *key)
            if self._queued:
                self._wake.set()
