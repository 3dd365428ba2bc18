"""The broker process: a member of a cluster kept in the coordination service.

Start: check the log dir is this broker's; reach the coordination service (an embedded one
when ``zookeeper.connect`` is unset, as ``klamm standalone`` runs) and agree on the cluster id;
import a single-node ``topics.json``; recover the logs; open the listener; register as live;
stand for controller; return once the controller has told this broker the cluster's state (its
own id appears in the metadata cache), so a caller can use it at once.

Stop (SIGTERM): controlled shutdown first (the controller moves this broker's leaderships to
other in-sync replicas, bounded by ``controlled.shutdown.max.retries``), then stop accepting,
answer what is in flight (parked fetches are woken, acks=all waits fail over), stop the
fetchers and the controller role, close the coordination session (the registration goes at
once, so the controller acts without waiting out the session), flush and checkpoint every log.

Everything runs on one event loop; fsyncs run in executor threads. The parts each own one
concept: ``MetadataCache`` (what clients are told), ``ReplicaManager`` (hosted partitions and
their waits), ``Controller`` (the cluster's decisions when elected), ``TopicAdmin`` (admin
requests), ``Membership`` (registration). Handlers get the parts they use (``apis``).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Coroutine, Iterable
from typing import Any

from klamm.protocol.api import ApiKey
from klamm.protocol.cluster_api import ControlledShutdownRequest, ControlledShutdownResponse
from klamm.protocol.config import ConfigError
from klamm.protocol.errors import ErrorCode
from klamm.protocol.frame import Request
from klamm.protocol.peer_auth import new_secret
from klamm.protocol.wire import MalformedMessage, from_wire, to_wire
from klamm.zk.client import ZkClient
from klamm.zk.config import ZkConfig
from klamm.zk.server import ZkServer

from .apis import ApiSpec, build_apis
from .cluster.legacy_import import import_local_topics
from .cluster.membership import Membership, connect
from .cluster.model import BrokerRegistration
from .cluster.store import ClusterStore
from .config import BrokerConfig, TopicConfig
from .connection import ClientConnection
from .reply import HandlerResult, PendingReply, Reply
from .controller.controller import Controller
from .controller_link import AlterPartitionQueue, ControllerLink, ControllerUnavailable
from .data_dir_lock import DataDirLock
from .fd_budget import FileDescriptorBudget
from .errors import INVALID_REQUEST_LOG_INTERVAL, error_code_of, report_invalid_request
from .log import LogManager
from .log.files import parse_partition_dir
from .meta_properties import check_broker_id, check_cluster_id, write_meta_properties
from .metadata_cache import MetadataCache
from .metrics import BrokerMetrics
from .peer_auth import PeerAuthenticator, PeerIdentity
from .replica_manager import ReplicaManager
from .report_limiter import ReportLimiter
from .replication.fetcher import FetcherSettings, ReplicaFetcherManager
from .request_memory import RequestMemoryPool
from .topic_admin import TopicAdmin
from .topic_configs import ConfigChangeListener, TopicConfigs

log = logging.getLogger(__name__)

# What a handler meets in a body of the wrong shape (a field missing, a float too large for
# an int): answered INVALID_REQUEST, never logged as a broker fault.
_MALFORMED = (KeyError, TypeError, ValueError, AttributeError, IndexError, ArithmeticError)
EMBEDDED_ZK_DIR = "zk"
JOIN_WARNING_S = 10.0


class StartAborted(Exception):
    """``request_stop`` came while the broker was still starting."""


class BrokerServer:
    def __init__(self, config: BrokerConfig, *, explicit_config_keys: Iterable[str] = (),
                 embedded_zk: ZkConfig | None = None) -> None:
        self.config = config
        self.explicit_config_keys = frozenset(explicit_config_keys)
        self.metrics = BrokerMetrics()
        self.cluster_id = ""
        self.port = config.port
        self.stopping = False
        self.started = False
        self._embedded_zk_config = embedded_zk
        self.zk_server: ZkServer | None = None
        self.zk: ZkClient | None = None
        self.zk_hosts = config.zookeeper_connect or ""
        self.metadata = MetadataCache(config.broker_id)
        self.store: ClusterStore
        self.topic_configs: TopicConfigs
        self.logs: LogManager | None = None
        self.replicas: ReplicaManager
        self.admin: TopicAdmin
        self.controller: Controller
        self.peer_identity: PeerIdentity
        self.peer_auth: PeerAuthenticator
        self.link: ControllerLink | None = None
        self.isr_changes: AlterPartitionQueue | None = None
        self.membership: Membership | None = None
        self.config_listener: ConfigChangeListener | None = None
        self.apis: dict[int, ApiSpec] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[ClientConnection] = set()
        self.request_memory = RequestMemoryPool(config.queued_max_request_bytes)
        self._invalid_reports = ReportLimiter(INVALID_REQUEST_LOG_INTERVAL)
        self.fetch_fds = FileDescriptorBudget()
        self.metrics.request_memory_bytes.set_function(lambda: self.request_memory.reserved)
        self.metrics.request_memory_waiting.set_function(lambda: self.request_memory.waiting)
        self._background: set[asyncio.Task[Any]] = set()
        self._request_counters: dict[int, Any] = {}
        self._metrics_server: asyncio.Server | None = None
        self.metrics_port: int | None = None
        self._idle = asyncio.Event()  # set when a connection has answered everything
        self._stop_requested = asyncio.Event()
        self.listening = asyncio.Event()  # the port is open (start may still be joining)
        self._dir_lock = DataDirLock(config.log_dir)

    @property
    def bootstrap(self) -> str:
        return f"{self.config.host}:{self.port}"

    @property
    def broker_epoch(self) -> int:
        return self.membership.epoch if self.membership is not None else -1

    def request_stop(self) -> None:
        """Ask a starting broker to give up (a signal arrived): ``start`` raises StartAborted
        at its next wait."""
        self._stop_requested.set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        cfg = self.config
        self._dir_lock.acquire()  # before anything in the dir is read or written
        stored = check_broker_id(cfg.log_dir, cfg.broker_id)
        if cfg.zookeeper_connect is None:
            await self._start_embedded_zk()
        zk = await connect(self.zk_hosts, cfg.zookeeper_session_timeout_ms, cfg.broker_id,
                           self._stop_requested)
        if zk is None:
            raise StartAborted()
        self.zk = zk
        store = self.store = ClusterStore(zk)
        await store.ensure_layout()
        check_cluster_id(cfg.log_dir, stored, await store.cluster_id(), self.zk_hosts)
        self.cluster_id = await store.get_or_create_cluster_id(stored.cluster_id or
                                                               _new_cluster_id())
        check_cluster_id(cfg.log_dir, stored, self.cluster_id, self.zk_hosts)
        write_meta_properties(cfg.log_dir, cfg.broker_id, self.cluster_id)
        self.metadata.cluster_id = self.cluster_id
        identity = self.peer_identity = PeerIdentity(
            self.cluster_id, cfg.broker_id, await store.get_or_create_peer_secret(new_secret()))
        self.peer_auth = PeerAuthenticator(identity)
        await import_local_topics(cfg.log_dir, store, cfg.broker_id)

        self.topic_configs = TopicConfigs(cfg, store)
        await self.topic_configs.load(_local_topics(cfg.log_dir))
        self.logs = LogManager(cfg, self.topic_configs.effective)
        self.logs.health.on_offline = self._log_dir_offline
        self.logs.load()
        self.link = ControllerLink(identity, self.metadata, cfg.controller_socket_timeout_ms)
        self.isr_changes = AlterPartitionQueue(self.link, lambda: self.broker_epoch,
                                               cfg.controller_retry_backoff_ms)
        fetchers = ReplicaFetcherManager(
            FetcherSettings(identity, cfg.replica_fetch_max_bytes,
                            cfg.replica_fetch_wait_max_ms, cfg.replica_fetch_min_bytes,
                            cfg.replica_fetch_backoff_ms, cfg.replica_socket_timeout_ms),
            self.metrics.replication_bytes_in.inc)
        self.replicas = ReplicaManager(cfg, self.logs, self.metrics, self.metadata,
                                       self.topic_configs.effective, fetchers, self.isr_changes)
        self.admin = TopicAdmin(cfg, store, self.metadata, self.topic_configs)
        self.controller = Controller(cfg, zk, store, self.metrics, identity,
                                     _unclean_enabled(cfg))
        self.link.local = self.controller
        self.apis = build_apis(self)
        self._request_counters = {key: self.metrics.requests.labels(api=_api_name(key))
                                  for key in self.apis}
        await self.logs.start()
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: ClientConnection(self), cfg.host, cfg.port, reuse_address=True,
                backlog=1024)
        except OSError as exc:
            raise CannotListen(f"{cfg.host}:{cfg.port}", "--listen HOST:PORT", exc) from exc
        self.port = self._server.sockets[0].getsockname()[1]
        self.listening.set()
        if cfg.metrics_port is not None:
            from .metrics_http import serve_metrics
            try:
                self._metrics_server = await serve_metrics(self.metrics, cfg.host,
                                                           cfg.metrics_port)
            except OSError as exc:
                raise CannotListen(f"{cfg.host}:{cfg.metrics_port} (metrics.port)",
                                   "--override metrics.port=PORT", exc) from exc
            self.metrics_port = self._metrics_server.sockets[0].getsockname()[1]

        self.membership = Membership(zk, store, self._registration)
        await self._unless_stopped(self.membership.register())
        self.membership.follow_session(self._rejoined)
        self.isr_changes.start()
        self.replicas.start()
        self.config_listener = ConfigChangeListener(store, self.topic_configs,
                                                    self._config_changed)
        await self.config_listener.start()
        self.controller.start()
        await self._joined()
        self.started = True
        log.info("broker %d listening on %s:%d (log dir %s, cluster %s, coordination %s)",
                 cfg.broker_id, cfg.host, self.port, cfg.log_dir, self.cluster_id,
                 self.zk_hosts)

    async def _start_embedded_zk(self) -> None:
        zk_config = self._embedded_zk_config or ZkConfig.build({
            "host": "127.0.0.1", "port": 0,
            "data_dir": os.path.join(self.config.log_dir, EMBEDDED_ZK_DIR)})
        server = ZkServer(zk_config)
        server.on_storage_failure = self._embedded_zk_failed
        await server.start()
        ended = server.expire_restored_sessions()
        if ended:
            log.info("embedded coordination service: ended %d session(s) of the previous "
                     "process", ended)
        self.zk_server = server
        self.zk_hosts = f"{zk_config.host if zk_config.host != '0.0.0.0' else '127.0.0.1'}:" \
                        f"{server.port}"

    async def _unless_stopped(self, work: Coroutine[Any, Any, Any]) -> Any:
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stop_requested.wait())
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not task.done():
            task.cancel()
            raise StartAborted()
        return task.result()

    async def _joined(self) -> None:
        """Wait until the controller's metadata lists this broker (it then knows its
        partitions); warns every JOIN_WARNING_S while it does not."""
        me = self.config.broker_id
        while not await self._unless_stopped(self.metadata.wait_until(
                lambda: me in self.metadata.brokers, JOIN_WARNING_S)):
            controller = await self.store.controller_id()
            log.warning("broker %d is registered but has not heard from the controller yet "
                        "(controller: %s); waiting", me,
                        "none elected" if controller is None else f"broker {controller}")

    def _registration(self) -> BrokerRegistration:
        cfg = self.config
        host = cfg.advertised_host or cfg.host
        if host in ("", "0.0.0.0", "::"):
            host = socket.gethostname()
        return BrokerRegistration(cfg.broker_id, host, cfg.advertised_port or self.port,
                                  cfg.broker_rack,
                                  session_timeout_ms=cfg.zookeeper_session_timeout_ms)

    async def _rejoined(self) -> None:
        if self.config_listener is not None:
            self.config_listener.rearm()

    def _config_changed(self, topic: str, config: TopicConfig) -> None:
        self.replicas.update_config(topic, config)
        self.controller.topic_config_changed(topic)

    def apply_topic_config(self, topic: str, config: TopicConfig) -> None:
        """An ALTER_CONFIGS handled here: apply at once (the notice reaches the others)."""
        self._config_changed(topic, config)

    async def stop(self) -> None:
        """Graceful shutdown: move leaderships away, finish in-flight requests, flush,
        checkpoint, leave the cluster."""
        if self.stopping:
            return
        self.stopping = True
        self._stop_requested.set()
        cfg = self.config
        if self.started and cfg.controlled_shutdown_enable:
            await self._controlled_shutdown()
        if self._server is not None:
            self._server.close()
        if self._metrics_server is not None:
            self._metrics_server.close()
        if self.started:
            self.replicas.purgatory.fail_all(ErrorCode.NOT_LEADER_OR_FOLLOWER)
            self.replicas.waiters.wake_all()
            self.replicas.replica_waiters.wake_all()
        try:
            async with asyncio.timeout(cfg.shutdown_timeout_ms / 1000):
                while any(not c.idle for c in self._connections):
                    self._idle.clear()
                    await self._idle.wait()
        except TimeoutError:
            log.warning("shutdown timeout: closing connections with requests in flight")
        for conn in list(self._connections):
            conn.close()
        if self._background:
            await asyncio.wait(self._background, timeout=cfg.shutdown_timeout_ms / 1000)
        if self.config_listener is not None:
            await self.config_listener.stop()
        if hasattr(self, "controller"):
            await self.controller.stop()
        if self.isr_changes is not None:
            await self.isr_changes.stop()
        if hasattr(self, "replicas"):
            await self.replicas.stop()
        if self.link is not None:
            self.link.close()
        if self.membership is not None:
            await self.membership.stop()
        if self.zk is not None:
            await self.zk.close()
        if self.logs is not None:
            await self.logs.close()
        if self._server is not None:
            await self._server.wait_closed()
        if self.zk_server is not None:
            await self.zk_server.stop()
        if not self._dir_lock.held:
            return  # it never started: another broker holds the dir
        self._dir_lock.release()
        log.info("broker %d stopped cleanly", cfg.broker_id)

    def _embedded_zk_failed(self, exc: BaseException) -> None:
        """The embedded coordination service keeps its log in this broker's log dir: when
        its disk turns read-only or fails, the log dir is offline now, not at its next write."""
        if self.logs is not None:
            self.logs.health.observe(exc)

    def _log_dir_offline(self) -> None:
        """The only log dir failed: its replicas are useless here. Stop following, and hand
        the leaderships to other in-sync replicas as a controlled shutdown does (Kafka tells
        its controller the same); the broker keeps answering, with STORAGE_ERROR."""
        if not hasattr(self, "replicas"):
            return  # still loading: the start fails on its own
        # Not inside the write that failed (an append may be half way through its callers).
        asyncio.get_running_loop().call_soon(self._hand_over_after_log_dir_failure)

    def _hand_over_after_log_dir_failure(self) -> None:
        self.replicas.log_dir_offline()
        if self.started and not self.stopping and self.config.controlled_shutdown_enable:
            log.warning("moving the leaderships of broker %d to other in-sync replicas "
                        "(its log dir is offline)", self.config.broker_id)
            task = asyncio.get_running_loop().create_task(self._controlled_shutdown())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _controlled_shutdown(self) -> None:
        """Ask the controller to move this broker's leaderships; retry while some could
        still move (another replica is live), up to ``controlled.shutdown.max.retries``."""
        cfg = self.config
        assert self.link is not None
        attempts = cfg.controlled_shutdown_max_retries + 1
        for attempt in range(1, attempts + 1):
            try:
                body = await self.link.request(
                    ApiKey.CONTROLLED_SHUTDOWN,
                    to_wire(ControlledShutdownRequest(cfg.broker_id, self.broker_epoch)))
                response = from_wire(ControlledShutdownResponse, body)
            except (ControllerUnavailable, MalformedMessage) as exc:
                problem = str(exc)
            else:
                if response.error_code == 0:
                    movable = [r for r in response.remaining
                               if self._other_live_replica(r.topic, r.partition)]
                    await self._leaderships_moved({(r.topic, r.partition)
                                                   for r in response.remaining})
                    if not movable:
                        log.info("controlled shutdown: leaderships moved (%d partition(s) "
                                 "have no other live replica and stay led here)",
                                 len(response.remaining))
                        return
                    problem = (f"{len(movable)} partition(s) have no in-sync replica to take "
                               f"over yet, e.g. {movable[0].topic}-{movable[0].partition}")
                else:
                    problem = f"{ErrorCode(response.error_code).name}: {response.error_message}"
            if attempt < attempts:
                log.warning("controlled shutdown attempt %d of %d: %s; retrying in %d ms",
                            attempt, attempts, problem, cfg.controlled_shutdown_retry_backoff_ms)
                await asyncio.sleep(cfg.controlled_shutdown_retry_backoff_ms / 1000)
            else:
                log.warning("controlled shutdown did not complete (%s); shutting down anyway",
                            problem)

    def _other_live_replica(self, topic: str, partition: int) -> bool:
        p = self.metadata.partition(topic, partition)
        return p is not None and any(b != self.config.broker_id and b in self.metadata.brokers
                                     for b in p.replicas)

    async def _leaderships_moved(self, staying: set[tuple[str, int]]) -> None:
        """Wait (briefly) for the controller's StopReplica to reach this broker."""
        def moved() -> bool:
            return not any(p.is_leader and p.key not in staying for p in self.replicas.leaders())
        if not await self.replicas.changes.wait_until(
                moved, self.config.controller_socket_timeout_ms / 1000):
            log.warning("controlled shutdown: the controller's StopReplica did not arrive")

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
        spec = self.apis.get(header.api_key)
        if spec is None:
            return _error_reply(ErrorCode.UNKNOWN_API, f"unknown api key {header.api_key}")
        if not spec.min_version <= header.api_version <= spec.max_version:
            return _error_reply(ErrorCode.UNSUPPORTED_VERSION,
                                f"api {_api_name(header.api_key)} version {header.api_version} "
                                f"is not in [{spec.min_version}, {spec.max_version}]")
        self._request_counters[header.api_key].inc()
        refused = self.peer_auth.refusal(header.api_key, _api_name(header.api_key),
                                         request.body, conn.peer_session, conn.peer)
        if refused is not None:
            return refused
        try:
            if header.api_key == ApiKey.SASL_AUTHENTICATE:  # the one per-connection api
                return self.peer_auth.handle(request.body, conn.peer_session, conn.peer)
            result = spec.handler(request)
        except Exception as exc:
            return self._failed(exc, conn.peer, header.api_key)
        if result is None or isinstance(result, (Reply, PendingReply)):
            return result
        return self._awaited(result, conn.peer, header.api_key)

    async def _awaited(self, work: Awaitable[Reply], peer: str, api_key: int) -> Reply:
        try:
            return await work
        except Exception as exc:
            return self._failed(exc, peer, api_key)

    def _failed(self, exc: BaseException, peer: str, api_key: int) -> Reply:
        """The error answer for a handler's exception; a malformed request is also logged,
        in one rate-limited line."""
        reply = self.error_reply_for(exc)
        if reply.body["error_code"] == ErrorCode.INVALID_REQUEST:
            report_invalid_request(self._invalid_reports, peer, _api_name(api_key),
                                   reply.body["error_message"])
        return reply

    def error_reply_for(self, exc: BaseException) -> Reply:
        if isinstance(exc, asyncio.CancelledError):
            return _error_reply(ErrorCode.BROKER_SHUTTING_DOWN, "request cancelled")
        if isinstance(exc, _MALFORMED) and not isinstance(exc, ConfigError):
            return _error_reply(ErrorCode.INVALID_REQUEST,
                                f"malformed request body: {type(exc).__name__}: {exc}")
        code, message = error_code_of(exc)
        return _error_reply(code, message)


class CannotListen(Exception):
    """A port this broker must open is taken or not allowed; says which, and the option."""

    def __init__(self, address: str, option: str, exc: OSError) -> None:
        if exc.errno == errno.EADDRINUSE:
            why = (f"the port is in use by another process; stop it, or pick another port "
                   f"with {option}")
        else:
            why = f"{exc.strerror or exc}; pick another address with {option}"
        super().__init__(f"cannot listen on {address}: {why}")


def _error_reply(code: ErrorCode, message: str) -> Reply:
    return Reply({"error_code": int(code), "error_message": message})


def _api_name(key: int) -> str:
    try:
        return ApiKey(key).name
    except ValueError:
        return str(key)


def _new_cluster_id() -> str:
    return uuid.uuid4().hex[:22]


def _local_topics(log_dir: str) -> set[str]:
    topics = set()
    for name in os.listdir(log_dir):
        tp = parse_partition_dir(name)
        if tp is not None and os.path.isdir(os.path.join(log_dir, name)):
            topics.add(tp[0])
    return topics


def _unclean_enabled(broker: BrokerConfig) -> Any:
    def unclean(overrides: dict[str, str]) -> bool:
        try:
            return TopicConfig.effective(broker, overrides).unclean_leader_election_enable
        except ConfigError:
            return broker.unclean_leader_election_enable
    return unclean
