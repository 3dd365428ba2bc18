"""The coordination server: connections, sessions, watches, on top of ``ZkDatabase``.

Every request is handled synchronously in arrival order (the tree is in memory); only the
group commit waits on the disk. Each connection has an outbox of frames tagged with the
zxid they depend on, and a frame leaves only once that zxid is durable: so nothing a client
sees (a write's result, a read of someone else's write, a watch event) can be lost in a crash,
and a connection's frames leave in the order they were produced. That order gives ZooKeeper's
guarantee: a watch event reaches a client before the response to any request it sent after
the change was applied.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from klamm.protocol.frame import (FrameDecoder, FrameError, Request, encode_response,
                                  parse_request)

from .api import EVENT_CORRELATION_ID, ZkApi
from .config import ZkConfig
from .database import ZkDatabase
from .errors import (BadArgumentsError, DataTooLargeError, InvalidRequestError,
                     SessionExpiredError, UnknownOpError, ZkError, ZkErrorCode)
from .sessions import SessionTracker
from .tree import Stat, WatchEvent
from .txn import (CheckTxn, CloseSessionTxn, CreateSessionTxn, CreateTxn, DeleteTxn, MultiTxn,
                  Op, SetTxn, Txn)
from .watches import CHILD, DATA, WatchManager

log = logging.getLogger(__name__)


class ZkConnection(asyncio.Protocol):
    """One client connection: frames in, an ordered durability-gated outbox out."""

    def __init__(self, server: "ZkServer") -> None:
        self.server = server
        self.decoder = FrameDecoder(server.config.max_request_bytes)
        self.transport: asyncio.Transport | None = None
        self.session_id = 0
        self.outbox: deque[tuple[int, bytes]] = deque()
        self.close_after_flush = False
        self.closed = False
        self.peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.closed or self.server.stopping:
            return  # stopping: nothing new is applied, what was applied is still flushed
        try:
            frames = self.decoder.feed(data)
            for meta, payload in frames:
                self.server.handle(self, parse_request(meta, payload))
                if self.closed:
                    return
        except FrameError as exc:
            log.warning("closing connection from %s: %s", self.peer, exc)
            self.send(0, encode_response(EVENT_CORRELATION_ID,
                                         {"event": "error", "message": str(exc)}))
            self.close_when_flushed()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        self.server.detach(self)

    def send(self, zxid: int, frame: bytes) -> None:
        """Queue ``frame``; it leaves once ``zxid`` is durable and earlier frames have left."""
        if self.closed:
            return
        if not self.outbox and zxid <= self.server.db.durable_zxid:
            assert self.transport is not None
            self.transport.write(frame)
        else:
            self.outbox.append((zxid, frame))
            self.server.waiting.add(self)

    def flush(self, durable: int) -> None:
        out = []
        while self.outbox and self.outbox[0][0] <= durable:
            out.append(self.outbox.popleft()[1])
        if out and not self.closed and self.transport is not None:
            self.transport.write(b"".join(out))
        if not self.outbox:
            self.server.waiting.discard(self)
            if self.close_after_flush:
                self.abort_or_close()

    def close_when_flushed(self) -> None:
        self.close_after_flush = True
        if not self.outbox:
            self.abort_or_close()

    def abort_or_close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()


def _get(body: Mapping[str, Any], name: str, kind: type | tuple[type, ...],
         default: Any = None) -> Any:
    value = body.get(name, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidRequestError(f"field {name!r} must be {getattr(kind, '__name__', kind)}, "
                                  f"got {type(value).__name__}")
    return value


class ZkServer:
    """``ZkServer(config)``; ``await start()``; ``.port``; ``await stop()``. Embeddable."""

    def __init__(self, config: ZkConfig | Mapping[str, Any] | None = None,
                 **overrides: Any) -> None:
        if not isinstance(config, ZkConfig):
            config = ZkConfig.build(dict(config or {}), **overrides)
        elif overrides:
            config = config.with_overrides(overrides)
        self.config = config
        self.db = ZkDatabase(config.data_dir, snapshot_every=config.snapshot_interval_txns,
                             log_roll_bytes=config.log_roll_bytes)
        self.tracker = SessionTracker(config.min_session_timeout_ms,
                                      config.max_session_timeout_ms)
        self.watches = WatchManager()
        self.connections: set[ZkConnection] = set()
        self.waiting: set[ZkConnection] = set()
        self.attached: dict[int, ZkConnection] = {}
        self.expired_sessions = 0
        self.stopping = False
        # Called with the error when the transaction log fails (the service then stops): a
        # process embedding the service on a disk it shares learns the disk failed.
        self.on_storage_failure: Callable[[BaseException], None] | None = None
        self._server: asyncio.Server | None = None
        self._expiry_task: asyncio.Task[None] | None = None
        self.stopped = asyncio.Event()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    async def start(self) -> None:
        self.db.load()
        self.db.on_durable = self._on_durable
        self.db.on_failure = self._on_failure
        self.db.start()
        now = time.monotonic()
        for session_id, info in self.db.tree.sessions.items():
            # like ZooKeeper: a session restored from disk gets one full timeout to re-attach
            self.tracker.add(session_id, info.timeout_ms, now)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: ZkConnection(self), self.config.host,
                                                self.config.port, reuse_address=True)
        self._expiry_task = loop.create_task(self._expiry_loop(), name="zk-session-expiry")

    def expire_restored_sessions(self) -> int:
        """End every session restored from disk at once (their ephemerals go). For a server
        embedded in the one process that used it: no owner of those sessions can be alive,
        so waiting out their timeouts would only delay the process's own re-registration.
        Call right after ``start``, before any client connects. Returns how many ended."""
        restored = [s for s in self.db.tree.sessions if s not in self.attached]
        for session_id in restored:
            self._end_session(session_id, expired=True)
        return len(restored)

    async def stop(self) -> None:
        if self._server is None:
            return
        self.stopping = True
        self._server.close()
        if self._expiry_task is not None:
            self._expiry_task.cancel()
        await self.db.close()
        self._on_durable(self.db.durable_zxid)
        for conn in list(self.connections):
            conn.abort_or_close()
        await self._server.wait_closed()
        self._server = None
        self.stopped.set()

    # -- durability and expiry -----------------------------------------------------------

    def _on_durable(self, zxid: int) -> None:
        for conn in list(self.waiting):
            conn.flush(zxid)

    def _on_failure(self, exc: BaseException) -> None:
        if self.on_storage_failure is not None:
            self.on_storage_failure(exc)
        for conn in list(self.connections):
            conn.abort_or_close()
        asyncio.get_running_loop().create_task(self.stop())

    async def _expiry_loop(self) -> None:
        interval = self.config.session_check_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            for session_id in self.tracker.expired(time.monotonic()):
                log.info("session %#x expired", session_id)
                self.expired_sessions += 1
                self._end_session(session_id, expired=True)

    def _end_session(self, session_id: int, *, expired: bool) -> int:
        """Close the session in the tree (ephemerals go, watches fire); returns the zxid."""
        self.tracker.mark_closing(session_id)
        self.watches.remove_session(session_id)
        zxid = self.db.tree.last_zxid
        if session_id in self.db.tree.sessions:
            _, events, zxid = self.db.apply(CloseSessionTxn(session_id))
            self._fire(events, zxid)
        conn = self.attached.pop(session_id, None)
        if conn is not None and expired:
            conn.send(zxid, encode_response(EVENT_CORRELATION_ID,
                                            {"event": "session", "state": "expired"}))
            conn.session_id = 0
            conn.close_when_flushed()
        self.tracker.remove(session_id)
        return zxid

    def detach(self, conn: ZkConnection) -> None:
        """The session outlives its connection; its watches do not: the client re-sends
        them with the last zxid it saw when it re-attaches (see ``_rewatch``)."""
        if conn.session_id and self.attached.get(conn.session_id) is conn:
            del self.attached[conn.session_id]
            self.watches.remove_session(conn.session_id)

    def _fire(self, events: list[WatchEvent], zxid: int) -> None:
        for session_id, event in self.watches.trigger(events):
            conn = self.attached.get(session_id)
            if conn is not None:
                conn.send(zxid, self._event_frame(event, zxid))

    @staticmethod
    def _event_frame(event: WatchEvent, zxid: int) -> bytes:
        return encode_response(EVENT_CORRELATION_ID, {"event": "watch", "type": event.type,
                                                      "path": event.path, "zxid": zxid})

    def _rewatch(self, session_id: int, last_zxid: int, watches: Any) -> list[WatchEvent]:
        """Re-register a re-attaching client's watches; changes it missed after
        ``last_zxid`` (the last zxid it saw) fire at once instead (ZooKeeper's SetWatches)."""
        if watches is None:
            return []
        if not isinstance(watches, Mapping):
            raise InvalidRequestError("watches must be a map of data/exist/child path lists")
        nodes = self.db.tree.nodes
        fired: list[WatchEvent] = []
        for path in _get(watches, "data", (list, tuple), ()):
            node = nodes.get(path)
            if node is None:
                fired.append(WatchEvent("deleted", path))
            elif node.mzxid > last_zxid:
                fired.append(WatchEvent("changed", path))
            else:
                self.watches.add(DATA, path, session_id)
        for path in _get(watches, "exist", (list, tuple), ()):
            if path in nodes:
                fired.append(WatchEvent("created", path))
            else:
                self.watches.add(DATA, path, session_id)
        for path in _get(watches, "child", (list, tuple), ()):
            node = nodes.get(path)
            if node is None:
                fired.append(WatchEvent("deleted", path))
            elif node.pzxid > last_zxid:
                fired.append(WatchEvent("child", path))
            else:
                self.watches.add(CHILD, path, session_id)
        return fired

    # -- requests ------------------------------------------------------------------------

    def handle(self, conn: ZkConnection, request: Request) -> None:
        header = request.header
        if conn.session_id:
            self.tracker.touch(conn.session_id, time.monotonic())
        depends = self.db.tree.last_zxid
        try:
            body = request.body if request.body is not None else {}
            if not isinstance(body, Mapping):
                raise InvalidRequestError("request body must be a map")
            try:
                api = ZkApi(header.api_key)
            except ValueError:
                raise UnknownOpError(f"unknown operation {header.api_key}") from None
            if api is ZkApi.CONNECT:
                reply, depends, missed = self._connect(conn, body)
            else:
                self._require_session(conn)
                reply, depends = self._dispatch(conn, api, body)
            reply["error"] = 0
            if api is not ZkApi.PING:
                reply["zxid"] = depends
        except ZkError as exc:
            depends = max(depends, self.db.tree.last_zxid)
            reply = {"error": int(exc.code), "message": exc.message, "zxid": depends}
            if hasattr(exc, "index"):
                reply["index"] = exc.index
        except Exception as exc:  # a bug must not take the other sessions down
            log.exception("request %s failed", header.api_key)
            reply = {"error": int(ZkErrorCode.SYSTEM_ERROR), "message": f"server error: {exc}"}
        conn.send(depends, encode_response(header.correlation_id, reply))
        if header.api_key == ZkApi.CLOSE and reply["error"] == 0:
            conn.close_when_flushed()
        elif header.api_key == ZkApi.CONNECT and reply["error"] == 0:
            for event in missed:
                conn.send(depends, self._event_frame(event, depends))

    def _require_session(self, conn: ZkConnection) -> None:
        if not conn.session_id:
            raise InvalidRequestError("no session on this connection: send CONNECT first")
        if not self.tracker.alive(conn.session_id):
            raise SessionExpiredError(f"session {conn.session_id:#x} has expired")

    def _connect(self, conn: ZkConnection, body: Mapping[str, Any]
                 ) -> tuple[dict[str, Any], int, list[WatchEvent]]:
        session_id = _get(body, "session_id", int, 0)
        requested = _get(body, "timeout_ms", int, 10000)
        password = _get(body, "password", bytes, b"")
        if conn.session_id:
            raise InvalidRequestError("this connection already has a session")
        missed: list[WatchEvent] = []
        if session_id == 0:
            timeout = self.tracker.negotiate(requested)
            password = secrets.token_bytes(16)
            session_id = self._new_session_id()
            _, _, zxid = self.db.apply(CreateSessionTxn(session_id, timeout, password))
            self.tracker.add(session_id, timeout, time.monotonic())
        else:
            info = self.db.tree.sessions.get(session_id)
            if info is None or not self.tracker.alive(session_id):
                raise SessionExpiredError(f"session {session_id:#x} has expired")
            if not secrets.compare_digest(info.password, password):
                raise SessionExpiredError(f"wrong password for session {session_id:#x}")
            timeout = info.timeout_ms
            old = self.attached.get(session_id)
            if old is not None and old is not conn:
                old.session_id = 0
                old.close_when_flushed()
            self.tracker.touch(session_id, time.monotonic())
            zxid = self.db.tree.last_zxid
            self.watches.remove_session(session_id)
            missed = self._rewatch(session_id, _get(body, "last_zxid", int, 0),
                                   body.get("watches"))
        conn.session_id = session_id
        self.attached[session_id] = conn
        return ({"session_id": session_id, "timeout_ms": timeout, "password": password}, zxid,
                missed)

    def _new_session_id(self) -> int:
        while True:
            candidate = int.from_bytes(os.urandom(8), "big") >> 1
            if candidate and candidate not in self.db.tree.sessions:
                return candidate

    def _dispatch(self, conn: ZkConnection, api: ZkApi, body: Mapping[str, Any]
                  ) -> tuple[dict[str, Any], int]:
        tree = self.db.tree
        last = tree.last_zxid
        if api is ZkApi.PING:
            return {}, 0
        if api is ZkApi.GET:
            path = _get(body, "path", str)
            data, stat = tree.get(path)
            self._maybe_watch(conn, body, DATA, path)
            return {"data": data, "stat": list(stat)}, last
        if api is ZkApi.EXISTS:
            path = _get(body, "path", str)
            maybe = tree.exists(path)
            self._maybe_watch(conn, body, DATA, path)
            return {"stat": list(maybe) if maybe else None}, last
        if api is ZkApi.GET_CHILDREN:
            path = _get(body, "path", str)
            children, stat = tree.get_children(path)
            self._maybe_watch(conn, body, CHILD, path)
            return {"children": children, "stat": list(stat)}, last
        if api is ZkApi.CLOSE:
            return {}, self._end_session(conn.session_id, expired=False)
        if api is ZkApi.MULTI:
            ops = _get(body, "ops", (list, tuple))
            if not ops:
                raise BadArgumentsError("multi needs at least one op")
            parsed = []
            for index, item in enumerate(ops):
                try:
                    parsed.append(self._op(conn, item))
                except ZkError as exc:
                    exc.index = index  # type: ignore[attr-defined]
                    raise
            txn: Txn = MultiTxn(tuple(parsed))
        else:
            txn = self._op(conn, {**body, "op": api.name.lower()})
        result, events, zxid = self.db.apply(txn)
        self._fire(events, zxid)
        return {"results": [self._result(r) for r in result]} if api is ZkApi.MULTI else (
            self._result(result)), zxid

    @staticmethod
    def _result(result: Any) -> dict[str, Any]:
        if isinstance(result, str):
            return {"path": result}
        if isinstance(result, Stat):
            return {"stat": list(result)}
        return {}

    def _maybe_watch(self, conn: ZkConnection, body: Mapping[str, Any], kind: str,
                     path: str) -> None:
        if _get(body, "watch", bool, False):
            self.watches.add(kind, path, conn.session_id)

    def _data(self, body: Mapping[str, Any]) -> bytes:
        data = _get(body, "data", bytes, b"")
        if len(data) > self.config.max_node_bytes:
            raise DataTooLargeError(f"node data of {len(data)} bytes exceeds max.node.bytes "
                                    f"({self.config.max_node_bytes})")
        return bytes(data)

    def _op(self, conn: ZkConnection, body: Any) -> Op:
        if not isinstance(body, Mapping):
            raise InvalidRequestError("each multi op must be a map")
        kind = body.get("op")
        path = _get(body, "path", str)
        version = _get(body, "version", int, -1)
        if kind == "create":
            ephemeral = _get(body, "ephemeral", bool, False)
            return CreateTxn(path, self._data(body), conn.session_id if ephemeral else 0,
                             _get(body, "sequential", bool, False),
                             _get(body, "makepath", bool, False))
        if kind == "delete":
            return DeleteTxn(path, version, _get(body, "recursive", bool, False))
        if kind == "set":
            return SetTxn(path, self._data(body), version)
        if kind == "check":
            return CheckTxn(path, version)
        raise UnknownOpError(f"unknown multi op {kind!r}")
