"""Async client of the coordination service, shaped like kazoo.

``ZkClient("host:port[,host:port][/chroot]", session_timeout_ms=...)``; ``await start()``;
create/get/set/delete/exists/get_children/multi; watches as callbacks (sync or async) or
:class:`~klamm.zk.events.WatchQueue`; session state changes via ``add_listener`` or
``session_events()``.

Connection loss: in-flight requests fail with ConnectionLossError (their outcome is
unknown), state goes SUSPENDED and the client re-attaches to the same session on any host;
requests issued meanwhile wait for that (up to the session timeout). If the server says the
session expired, or the client has heard nothing from any server for a whole session timeout,
state goes EXPIRED (ephemerals and watches are gone, or about to be) and a new session is
opened (CONNECTED again). Watch callbacks run in the order events arrive, before any later
response is handed to its caller; as in ZooKeeper, a callback armed by several reads of one
path (say get and get_children) is called once per event.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any

from klamm.protocol.frame import (FrameDecoder, FrameError, RequestHeader, encode_request,
                                  parse_response)

from .api import API_VERSION, EVENT_CORRELATION_ID, ZkApi
from .errors import (BadArgumentsError, ConnectionLossError, NodeExistsError,
                     NotACoordinationServiceError, SessionExpiredError, ZkError, error_for)
from .events import EventType, SessionState, WatchedEvent
from .ops import Check, Create, Delete, MultiOp, SetData
from .tree import Stat, validate_path

log = logging.getLogger(__name__)

WatchFn = Callable[[WatchedEvent], Any]
Listener = Callable[[SessionState], Any]


def parse_hosts(hosts: str) -> tuple[list[tuple[str, int]], str | None]:
    """``"h1:p1,h2:p2/chroot"`` -> ([(h1, p1), (h2, p2)], "/chroot")."""
    chroot = None
    slash = hosts.find("/")
    if slash >= 0:
        hosts, chroot = hosts[:slash], hosts[slash:]
    out = []
    for item in hosts.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not port.isdigit():
            raise BadArgumentsError(f"host must look like HOST:PORT, got {item.strip()!r}")
        out.append((host or "127.0.0.1", int(port)))
    return out, chroot


class _Conn(asyncio.Protocol):
    def __init__(self, client: "ZkClient") -> None:
        self.client = client
        self.decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.lost = asyncio.get_running_loop().create_future()
        self.last_heard = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.last_heard = time.monotonic()
        try:
            frames = self.decoder.feed(data)
        except FrameError as exc:
            log.warning("bad frame from coordination server: %s", exc)
            self.close()
            return
        for meta, payload in frames:
            try:
                resp = parse_response(meta, payload)
            except FrameError as exc:
                log.warning("bad response from coordination server: %s", exc)
                self.close()
                return
            body = resp.body
            if isinstance(body, dict) and body.get("zxid", 0) > self.client.last_zxid:
                self.client.last_zxid = body["zxid"]
            if resp.correlation_id == EVENT_CORRELATION_ID:
                self.client._on_push(body)
                continue
            fut = self.pending.pop(resp.correlation_id, None)
            if fut is not None and not fut.done():
                fut.set_result(resp.body)

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionLossError("connection to the coordination "
                                                      "service lost"))
        self.pending.clear()
        if self.client._conn is self:  # requests from now on wait for the re-attach
            self.client._connected.clear()
        if not self.lost.done():
            self.lost.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class ZkClient:
    """See the module docstring. Not thread-safe; use from one event loop."""

    def __init__(self, hosts: str, session_timeout_ms: int = 10000, chroot: str | None = None,
                 *, client_id: str = "klamm-zk", connect_timeout_ms: int | None = None) -> None:
        self.hosts, host_chroot = parse_hosts(hosts)
        chroot = chroot or host_chroot
        if chroot is not None:
            chroot = validate_path(chroot)
            chroot = None if chroot == "/" else chroot
        self.chroot = chroot
        self.session_timeout_ms = session_timeout_ms
        self.client_id = client_id
        self.connect_timeout = (connect_timeout_ms or max(1000, session_timeout_ms)) / 1000
        self.session_id = 0
        self.last_zxid = 0  # highest zxid seen in a reply or event: re-attach resumes there
        self.negotiated_timeout_ms = session_timeout_ms
        self._password = b""
        self.state = SessionState.CLOSED
        self._conn: _Conn | None = None
        self._next_corr = 0
        self._host_index = 0
        self._connected = asyncio.Event()
        self._data_watches: dict[str, list[WatchFn]] = {}  # node existed when registered
        self._exist_watches: dict[str, list[WatchFn]] = {}  # node was missing
        self._child_watches: dict[str, list[WatchFn]] = {}
        self._listeners: list[Listener] = []
        self._subscribers: list[asyncio.Queue[SessionState]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, timeout: float | None = None) -> None:
        """Open a session; raises ConnectionLossError when no host answers in time."""
        self._closing = False
        deadline = time.monotonic() + (timeout if timeout is not None else
                                       max(self.connect_timeout, 2.0))
        last: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                await self._open_session(new=True)
                break
            except NotACoordinationServiceError:
                raise  # a definite answer: waiting cannot make the peer a coordination service
            except (OSError, ZkError, asyncio.TimeoutError) as exc:
                last = exc
                await asyncio.sleep(0.05)
        else:
            reason = (str(last) or type(last).__name__) if last is not None else "timed out"
            raise ConnectionLossError(f"could not reach the coordination service at "
                                      f"{self._hosts_str()}: {reason}")
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(),
                                                                  name="zk-client")

    async def close(self) -> None:
        """End the session (its ephemeral nodes go at once) and disconnect."""
        if self._closing:
            return
        self._closing = True
        if self._conn is not None and self._connected.is_set():  # else CLOSE cannot go out
            with contextlib.suppress(ZkError, OSError, asyncio.TimeoutError):
                await asyncio.wait_for(self._send(ZkApi.CLOSE, {}), self.connect_timeout)
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._conn is not None:
            self._conn.close()
        for task in list(self._tasks):
            task.cancel()
        self._set_state(SessionState.CLOSED)

    async def __aenter__(self) -> "ZkClient":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self.state is SessionState.CONNECTED

    def _hosts_str(self) -> str:
        return ",".join(f"{h}:{p}" for h, p in self.hosts)

    async def _open_session(self, *, new: bool) -> None:
        host, port = self.hosts[self._host_index % len(self.hosts)]
        self._host_index += 1
        loop = asyncio.get_running_loop()
        _, conn = await asyncio.wait_for(
            loop.create_connection(lambda: _Conn(self), host, port), self.connect_timeout)
        try:
            body: dict[str, Any] = {"session_id": 0 if new else self.session_id,
                                    "timeout_ms": self.session_timeout_ms,
                                    "password": b"" if new else self._password}
            if not new:
                body["last_zxid"] = self.last_zxid
                body["watches"] = {
                    "data": [self._root(p) for p in self._data_watches],
                    "exist": [self._root(p) for p in self._exist_watches],
                    "child": [self._root(p) for p in self._child_watches]}
            reply = await asyncio.wait_for(self._call(conn, ZkApi.CONNECT, body),
                                           self.connect_timeout)
            if "session_id" not in reply:
                looks = ("it looks like a Klamm broker; the coordination service listens on "
                         "another port" if "error_code" in reply
                         else "its answer is not the coordination protocol")
                raise NotACoordinationServiceError(
                    f"{host}:{port} is not a coordination service ({looks})")
        except BaseException:
            conn.close()
            raise
        self.session_id = reply["session_id"]
        self._password = reply["password"]
        self.negotiated_timeout_ms = reply["timeout_ms"]
        self._conn = conn
        self._connected.set()
        self._set_state(SessionState.CONNECTED)

    async def _supervise(self) -> None:
        """Ping while connected; on loss re-attach, or start over when expired."""
        while not self._closing:
            conn = self._conn
            assert conn is not None
            await self._keepalive(conn)
            if self._closing:
                return
            self._connected.clear()
            if self.state is not SessionState.EXPIRED:
                self._set_state(SessionState.SUSPENDED)
            new = self.state is SessionState.EXPIRED
            backoff = 0.02
            while not self._closing:
                if not new and (time.monotonic() - conn.last_heard
                                > self.negotiated_timeout_ms / 1000):
                    # out of touch for a whole timeout: the server has (or soon will have)
                    # expired us; say so now rather than let a leader act on stale belief
                    self._expire()
                    new = True
                try:
                    await self._open_session(new=new)
                    break
                except SessionExpiredError:
                    self._expire()
                    new = True
                except (OSError, ZkError, asyncio.TimeoutError):
                    # retry fast at first (re-attaching must beat the session timeout),
                    # then back off so a long outage is not a busy loop
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.negotiated_timeout_ms / 6000, 1.0)

    async def _keepalive(self, conn: _Conn) -> None:
        interval = self.negotiated_timeout_ms / 3000
        read_timeout = self.negotiated_timeout_ms * 2 / 3000
        while not conn.lost.done():
            done, _ = await asyncio.wait({conn.lost}, timeout=interval)
            if done:
                return
            if time.monotonic() - conn.last_heard > read_timeout:
                log.info("no reply from the coordination service for %.0f ms; reconnecting",
                         read_timeout * 1000)
                conn.close()
                await conn.lost
                return
            self._spawn(self._call(conn, ZkApi.PING, {}))

    def _spawn(self, coro: Awaitable[Any]) -> None:
        async def run() -> None:
            with contextlib.suppress(ZkError, asyncio.CancelledError):
                await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _expire(self) -> None:
        log.warning("coordination session %#x expired", self.session_id)
        self._data_watches.clear()
        self._exist_watches.clear()
        self._child_watches.clear()
        self._set_state(SessionState.EXPIRED)

    # -- session events ------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """``listener(state)`` on every state change (may be a coroutine function)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    async def session_events(self) -> AsyncGenerator[SessionState, None]:
        """Every state change from now on, in order, until the client is closed."""
        queue: asyncio.Queue[SessionState] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            while True:
                state = await queue.get()
                yield state
                if state is SessionState.CLOSED:
                    return
        finally:
            self._subscribers.remove(queue)

    def _set_state(self, state: SessionState) -> None:
        if state is self.state:
            return
        self.state = state
        for queue in self._subscribers:
            queue.put_nowait(state)
        for listener in list(self._listeners):
            self._invoke(listener, state)

    def _invoke(self, fn: Callable[[Any], Any], arg: Any) -> None:
        try:
            result = fn(arg)
        except Exception:  # a user's callback must not break the connection
            log.exception("callback %r failed", fn)
            return
        if inspect.isawaitable(result):
            self._spawn(result)

    # -- watches -------------------------------------------------------------------------

    def _on_push(self, body: Any) -> None:
        kind = body.get("event") if isinstance(body, dict) else None
        if kind == "watch":
            etype = EventType(body["type"])
            path = self._unroot(body["path"])
            tables = []
            if etype in (EventType.CREATED, EventType.CHANGED, EventType.DELETED):
                tables += [self._data_watches, self._exist_watches]
            if etype in (EventType.CHILD, EventType.DELETED):
                tables.append(self._child_watches)
            callbacks: list[WatchFn] = []
            for table in tables:  # one call per callback, however many reads set it
                callbacks += [cb for cb in table.pop(path, []) if cb not in callbacks]
            event = WatchedEvent(etype, path)
            for cb in callbacks:
                self._invoke(cb, event)
        elif kind == "session" and body.get("state") == "expired":
            self._expire()
        elif kind == "error":
            log.warning("coordination server closed the connection: %s", body.get("message"))

    def _add_watch(self, table: dict[str, list[WatchFn]], path: str, fn: WatchFn) -> None:
        callbacks = table.setdefault(path, [])
        if fn not in callbacks:
            callbacks.append(fn)

    def _drop_watch(self, table: dict[str, list[WatchFn]], path: str, fn: WatchFn) -> None:
        callbacks = table.get(path, [])
        if fn in callbacks:
            callbacks.remove(fn)
        if not callbacks:
            table.pop(path, None)

    # -- requests ------------------------------------------------------------------------

    def _root(self, path: str) -> str:
        validate_path(path)
        if self.chroot is None:
            return path
        return self.chroot if path == "/" else self.chroot + path

    def _unroot(self, path: str) -> str:
        if self.chroot is None:
            return path
        if path == self.chroot:
            return "/"
        return path[len(self.chroot):] if path.startswith(self.chroot + "/") else path

    async def _call(self, conn: _Conn, api: ZkApi, body: dict[str, Any]) -> dict[str, Any]:
        if conn.transport is None or conn.lost.done():
            raise ConnectionLossError("not connected")
        self._next_corr = (self._next_corr + 1) & 0x7FFFFFFF
        corr = self._next_corr
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        conn.pending[corr] = fut
        conn.transport.write(encode_request(RequestHeader(api, API_VERSION, corr,
                                                          self.client_id), body))
        reply = await fut
        if reply.get("error"):
            exc = error_for(reply["error"], reply.get("message", ""))
            if "index" in reply:
                exc.index = reply["index"]  # type: ignore[attr-defined]
            raise exc
        return reply

    async def _send(self, api: ZkApi, body: dict[str, Any]) -> dict[str, Any]:
        if self._closing and api is not ZkApi.CLOSE:
            raise ConnectionLossError("the client is closed")
        if not self._connected.is_set():
            if self.state is SessionState.CLOSED:
                raise ConnectionLossError("the client is not started")
            try:
                await asyncio.wait_for(self._connected.wait(),
                                       self.negotiated_timeout_ms / 1000)
            except asyncio.TimeoutError:
                raise ConnectionLossError("not connected to the coordination service") from None
        assert self._conn is not None
        return await self._call(self._conn, api, body)

    async def _read(self, api: ZkApi, path: str, watch: WatchFn | None,
                    table: dict[str, list[WatchFn]], keep_on_no_node: bool = False
                    ) -> dict[str, Any]:
        full = self._root(path)
        added = watch is not None and watch not in table.get(path, [])
        if watch is not None:  # before sending: the event may arrive right after the reply
            self._add_watch(table, path, watch)
        try:
            reply = await self._send(api, {"path": full, "watch": watch is not None})
        except ZkError:
            if added:  # a registration from an earlier successful read stays
                self._drop_watch(table, path, watch)  # type: ignore[arg-type]
            raise
        return reply

    async def create(self, path: str, data: bytes = b"", ephemeral: bool = False,
                     sequential: bool = False, makepath: bool = False) -> str:
        """Create a node; returns its path (with the sequential suffix, without chroot)."""
        reply = await self._send(ZkApi.CREATE, {
            "path": self._root(path), "data": bytes(data), "ephemeral": ephemeral,
            "sequential": sequential, "makepath": makepath})
        return self._unroot(reply["path"])

    async def ensure_path(self, path: str) -> None:
        """Create ``path`` and its parents if missing (no error when it exists)."""
        with contextlib.suppress(NodeExistsError):
            await self.create(path, makepath=True)

    async def get(self, path: str, watch: WatchFn | None = None) -> tuple[bytes, Stat]:
        reply = await self._read(ZkApi.GET, path, watch, self._data_watches)
        return bytes(reply["data"]), Stat.from_wire(reply["stat"])

    async def exists(self, path: str, watch: WatchFn | None = None) -> Stat | None:
        reply = await self._read(ZkApi.EXISTS, path, watch, self._data_watches)
        if reply["stat"] is None:
            if watch is not None and watch in self._data_watches.get(path, []):
                # a watch on a missing node: on re-attach it means "tell me when created"
                self._drop_watch(self._data_watches, path, watch)
                self._add_watch(self._exist_watches, path, watch)
            return None
        return Stat.from_wire(reply["stat"])

    async def get_children(self, path: str, watch: WatchFn | None = None) -> list[str]:
        reply = await self._read(ZkApi.GET_CHILDREN, path, watch, self._child_watches)
        return list(reply["children"])

    async def set(self, path: str, data: bytes, version: int = -1) -> Stat:
        reply = await self._send(ZkApi.SET, {"path": self._root(path), "data": bytes(data),
                                             "version": version})
        return Stat.from_wire(reply["stat"])

    async def delete(self, path: str, version: int = -1, recursive: bool = False) -> None:
        """Delete a node (``recursive``: with its whole subtree, atomically)."""
        await self._send(ZkApi.DELETE, {"path": self._root(path), "version": version,
                                        "recursive": recursive})

    async def multi(self, ops: Sequence[MultiOp]) -> list[str | Stat | None]:
        """Apply all ``ops`` or none. Results per op: created path, Stat (set) or None.
        On failure raises the failing op's error; its ``index`` attribute names the op."""
        wire = []
        for op in ops:
            match op:
                case Create():
                    wire.append({"op": "create", "path": self._root(op.path),
                                 "data": bytes(op.data), "ephemeral": op.ephemeral,
                                 "sequential": op.sequential, "makepath": op.makepath})
                case Delete():
                    wire.append({"op": "delete", "path": self._root(op.path),
                                 "version": op.version, "recursive": op.recursive})
                case SetData():
                    wire.append({"op": "set", "path": self._root(op.path),
                                 "data": bytes(op.data), "version": op.version})
                case Check():
                    wire.append({"op": "check", "path": self._root(op.path),
                                 "version": op.version})
                case _:
                    raise BadArgumentsError(f"not a multi op: {op!r}")
        reply = await self._send(ZkApi.MULTI, {"ops": wire})
        out: list[str | Stat | None] = []
        for result in reply["results"]:
            if "path" in result:
                out.append(self._unroot(result["path"]))
            elif "stat" in result:
                out.append(Stat.from_wire(result["stat"]))
            else:
                out.append(None)
        return out
