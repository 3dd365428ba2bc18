"""The broker process: accepts connections, dispatches requests, owns storage and topics.

Lifecycle: ``start`` recovers the logs and opens the listener; ``stop`` (SIGTERM) stops
accepting, answers what is in flight (parked fetches are woken to answer with what they have),
flushes and checkpoints every log, and returns. Everything runs on one event loop; fsyncs run in
executor threads.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine, Iterable
from typing import Any

from klamm.protocol.config import ConfigError
from klamm.protocol.errors import ErrorCode
from klamm.protocol.frame import Request

from .apis import APIS
from .config import BrokerConfig, TopicConfig, validate_topic_name
from .connection import ClientConnection, HandlerResult, Reply
from .errors import error_code_of
from .log import LogManager
from .meta_properties import ensure_meta_properties
from .metrics import BrokerMetrics
from .replica_manager import ReplicaManager
from .topic_store import LocalTopicStore, TopicRecord

log = logging.getLogger(__name__)

_MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError)


class BrokerServer:
    def __init__(self, config: BrokerConfig, *, explicit_config_keys: Iterable[str] = ()) -> None:
        self.config = config
        self.explicit_config_keys = frozenset(explicit_config_keys)
        self.metrics = BrokerMetrics()
        self.topics = LocalTopicStore(config.log_dir)
        self.logs = LogManager(config, self._topic_config)
        self.replicas = ReplicaManager(config, self.logs)
        self.cluster_id = ""
        self.port = config.port
        self.stopping = False
        self._server: asyncio.Server | None = None
        self._connections: set[ClientConnection] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._request_counters = {key: self.metrics.requests.labels(api=_api_name(key))
                                  for key in APIS}
        self._metrics_server: asyncio.Server | None = None
        self.metrics_port: int | None = None
        self._idle = asyncio.Event()  # set when a connection has answered everything

    @property
    def bootstrap(self) -> str:
        return f"{self.config.host}:{self.port}"

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        os.makedirs(self.config.log_dir, exist_ok=True)
        self.cluster_id = ensure_meta_properties(self.config.log_dir, self.config.broker_id)
        self.topics.load()
        self.logs.load()
        for record in self.topics.topics.values():
            self.replicas.host_topic(record, self._topic_config(record.name))
        self.metrics.partitions.set(len(self.replicas.partitions))
        await self.logs.start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: ClientConnection(self), self.config.host, self.config.port,
            reuse_address=True, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.config.metrics_port is not None:
            from .metrics_http import serve_metrics
            self._metrics_server = await serve_metrics(self.metrics, self.config.host,
                                                       self.config.metrics_port)
            self.metrics_port = self._metrics_server.sockets[0].getsockname()[1]
        log.info("broker %d listening on %s:%d (log dir %s)", self.config.broker_id,
                 self.config.host, self.port, self.config.log_dir)

    async def stop(self) -> None:
        """Graceful shutdown: finish in-flight requests, flush, checkpoint."""
        if self.stopping:
            return
        self.stopping = True
        if self._server is not None:
            self._server.close()
        if self._metrics_server is not None:
            self._metrics_server.close()
        self.replicas.waiters.wake_all()
        try:
            async with asyncio.timeout(self.config.shutdown_timeout_ms / 1000):
                while any(not c.idle for c in self._connections):
                    self._idle.clear()
                    await self._idle.wait()
        except TimeoutError:
            log.warning("shutdown timeout: closing connections with requests in flight")
        for conn in list(self._connections):
            conn.close()
        if self._background:
            await asyncio.wait(self._background, timeout=self.config.shutdown_timeout_ms / 1000)
        await self.logs.close()
        if self._server is not None:
            await self._server.wait_closed()
        log.info("broker %d stopped cleanly", self.config.broker_id)

    def connection_opened(self, conn: ClientConnection) -> None:
        self._connections.add(conn)
        self.metrics.connections.inc()

    def connection_closed(self, conn: ClientConnection) -> None:
        self._connections.discard(conn)
        self.metrics.connections.dec()
        self._idle.set()

    def connection_idle(self) -> None:
        if self.stopping:
            self._idle.set()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ requests
    def dispatch(self, request: Request, conn: ClientConnection) -> HandlerResult:
        header = request.header
        spec = APIS.get(header.api_key)
        if spec is None:
            return _error_reply(ErrorCode.UNKNOWN_API, f"unknown api key {header.api_key}")
        if not spec.min_version <= header.api_version <= spec.max_version:
            return _error_reply(ErrorCode.UNSUPPORTED_VERSION,
                                f"api {_api_name(header.api_key)} version {header.api_version} "
                                f"is not in [{spec.min_version}, {spec.max_version}]")
        self._request_counters[header.api_key].inc()
        try:
            return spec.handler(self, request)
        except Exception as exc:
            return self.error_reply_for(exc)

    def error_reply_for(self, exc: BaseException) -> Reply:
        if isinstance(exc, asyncio.CancelledError):
            return _error_reply(ErrorCode.BROKER_SHUTTING_DOWN, "request cancelled")
        if isinstance(exc, _MALFORMED):
            log.debug("malformed request body", exc_info=exc)
            return _error_reply(ErrorCode.INVALID_REQUEST,
                                f"malformed request body: {type(exc).__name__}: {exc}")
        code, message = error_code_of(exc)
        return _error_reply(code, message)

    # ------------------------------------------------------------------ topics
    def _topic_config(self, name: str) -> TopicConfig:
        record = self.topics.topics.get(name)
        return TopicConfig.effective(self.config, record.configs if record else {})

    def create_topic(self, name: str, partitions: int, replication_factor: int,
                     configs: dict[str, Any], *, user: bool = False,
                     validate_only: bool = False) -> tuple[ErrorCode, str | None]:
        problem = validate_topic_name(name)
        if problem is not None:
            return ErrorCode.INVALID_TOPIC, problem
        if user and name.startswith("__"):
            return ErrorCode.INVALID_TOPIC, (f"topic names starting with '__' are reserved for "
                                             f"internal topics: {name!r}")
        if name in self.topics.topics:
            return ErrorCode.TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists"
        if partitions < 1:
            return ErrorCode.INVALID_PARTITIONS, f"num_partitions must be >= 1, got {partitions}"
        if replication_factor < 1 or replication_factor > 1:
            return ErrorCode.INVALID_REPLICATION_FACTOR, (
                f"replication factor {replication_factor} is impossible with 1 live broker")
        try:
            overrides = TopicConfig.check_overrides(configs)
            effective = TopicConfig.effective(self.config, overrides)
        except ConfigError as exc:
            return ErrorCode.INVALID_CONFIG, str(exc)
        if validate_only:
            return ErrorCode.NONE, None
        record = TopicRecord(name, partitions, replication_factor, overrides)
        try:
            self.replicas.host_topic(record, effective)
            self.topics.put(record)
        except OSError as exc:
            return ErrorCode.STORAGE_ERROR, f"cannot create topic {name!r}: {exc}"
        self.metrics.partitions.set(len(self.replicas.partitions))
        log.info("created topic %s with %d partition(s)", name, partitions)
        return ErrorCode.NONE, None

    def delete_topic(self, name: str) -> None:
        self.topics.remove(name)
        self.replicas.drop_topic(name)
        self.metrics.partitions.set(len(self.replicas.partitions))
        log.info("deleted topic %s", name)

    def alter_topic_config(self, name: str, changes: dict[str, Any],
                           validate_only: bool) -> None:
        """Apply incremental changes (None removes an override); raises ConfigError."""
        record = self.topics.topics[name]
        removed = {k.replace("_", ".").replace("-", ".") for k, v in changes.items() if v is None}
        overrides = {k: v for k, v in record.configs.items() if k not in removed}
        overrides.update(TopicConfig.check_overrides(
            {k: v for k, v in changes.items() if v is not None}))
        effective = TopicConfig.effective(self.config, overrides)
        if validate_only:
            return
        record.configs = overrides
        self.topics.put(record)
        self.replicas.update_config(name, effective)


def _error_reply(code: ErrorCode, message: str) -> Reply:
    return Reply({"error_code": int(code), "error_message": message})


def _api_name(key: int) -> str:
    from klamm.protocol.api import ApiKey
    try:
        return ApiKey(key).name
    except ValueError:
        return str(key)
