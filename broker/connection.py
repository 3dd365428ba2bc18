"""The broker side of one client connection.

The socket reads straight into the ``FrameReader``'s buffers (a large produce request lands
in its own buffer and is written to the log from there, never copied in user space); each
request is dispatched as soon as its frame is complete, so a client can pipeline. Answers
leave in request order: a FIFO of reply slots, each either ready, waiting on a task (an
fsync, an acks=all wait) or a ``PendingReply`` that whoever makes it fills in, which pumps
this connection at once (a parked long-poll fetch, answered from inside the append that fed
it). Every ready reply at the head of the FIFO after one read is coalesced into a single
transport write. Replies carrying file regions are sent by the ``ZeroCopyWriter``; while one
is being sent nothing else is written and reading is paused.

Back-pressure invariant: the broker reads a connection only while its peer takes answers.
When the transport's send buffer passes its high-water mark (``pause_writing``), no more
answers are moved into it and nothing more is read until it drains (``resume_writing``);
answers are handed to the transport in pieces of at most WRITE_PIECE_BYTES, so one pump
cannot overshoot the mark by more than that. Reading also stops while MAX_QUEUED_REPLIES
answers wait. A client that pipelines requests and never reads therefore costs a bounded
amount of memory: its requests wait in the kernel's socket buffers, not in ours. Requests
already received wait undispatched while MAX_FETCHES_HELD fetch answers (each holding a
descriptor per partition with data) are queued, so descriptors are bounded per connection too.

Large request frames reserve their declared size from the server's RequestMemoryPool
(``queued.max.request.bytes``) before they are read; a connection the pool cannot serve yet
stops reading until its turn comes. A frame must arrive whole within
``request.receive.timeout.ms`` of its first byte, counted while the broker is reading from
the connection; one that does not (a peer that declared a size and stalled) closes the
connection, checked every half timeout.

A frame that cannot be parsed (garbage, over ``socket.request.max.bytes``) closes this
connection only; an unknown api or a malformed body gets an error reply.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from typing import TYPE_CHECKING, cast

from klamm.protocol.api import ApiKey
from klamm.protocol.frame import FrameError, FrameReader, encode_response_head, parse_request

from .peer_auth import PeerSession
from .reply import PendingReply, Reply
from .sendfile import ZeroCopyWriter

if TYPE_CHECKING:
    from .server import BrokerServer

log = logging.getLogger(__name__)

# Stop reading from a client that has this many answers queued but unsent.
MAX_QUEUED_REPLIES = 1024
# Ready answers are coalesced into transport writes of about this size.
WRITE_PIECE_BYTES = 256 * 1024
# Fetch answers one connection may hold before its next request is handled: each may hold a
# file descriptor per partition it answers with data, until it is sent.
MAX_FETCHES_HELD = 4


class _Slot:
    __slots__ = ("correlation_id", "reply", "task", "pending", "fetch")

    def __init__(self, correlation_id: int, reply: Reply | None,
                 task: "asyncio.Task[Reply] | None" = None,
                 pending: PendingReply | None = None) -> None:
        self.correlation_id = correlation_id
        self.reply = reply
        self.task = task
        self.pending = pending
        self.fetch = False


class ClientConnection(asyncio.BufferedProtocol):
    def __init__(self, server: "BrokerServer") -> None:
        self.server = server
        # 64 KiB of scratch per connection; requests over 16 KiB get a buffer of their own,
        # and one such buffer is kept for the next (a produce is written to the log at once).
        self._reader = FrameReader(server.config.socket_request_max_bytes,
                                   scratch_bytes=64 * 1024, direct_threshold=16 * 1024,
                                   spare_buffers=1, budget=self,
                                   spare_max_bytes=4 * 1024 * 1024)
        self._memory = server.request_memory
        self._granted = 0  # reserved for us by the pool while we waited, not yet taken
        self._receive_timeout = server.config.request_receive_timeout_ms / 1000
        self._frame_begun: float | None = None  # loop time the partial frame began
        self._stall_check: asyncio.TimerHandle | None = None
        # Received requests not yet dispatched (see MAX_FETCHES_HELD), and fetch answers held.
        self._backlog: collections.deque[tuple[memoryview, memoryview]] = collections.deque()
        self._fetches_held = 0
        self._handling_soon = False
        self._queue: collections.deque[_Slot] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self._writer: ZeroCopyWriter | None = None
        self._sending = False
        self._read_paused = False
        self._write_paused = False  # the transport's send buffer is over its high-water mark
        self._peer_done = False  # the peer half-closed: close once every answer is out
        self._closed = False
        self.peer = "?"
        self.peer_session = PeerSession()  # proven to be a broker (inter-broker requests)?
        self._copy_below = server.config.sendfile_min_bytes

    # ------------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        metrics = self.server.metrics
        self._writer = ZeroCopyWriter(self._transport, self.server.config.sendfile_enable,
                                      metrics.sendfile_bytes.inc, metrics.copied_bytes.inc)
        self._stall_check = asyncio.get_running_loop().call_later(
            self._receive_timeout / 2, self._check_stall)
        self.server.connection_opened(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._reader.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        if self._closed:
            return
        reader = self._reader
        try:
            frames = reader.buffer_updated(nbytes)
        except FrameError as exc:
            self._abort(f"bad frame: {exc}")
            return
        if self._backlog or frames:
            self._backlog.extend(frames)
            self._handle_backlog()
        if not reader.buffered:
            self._frame_begun = None
        elif frames or self._frame_begun is None:
            self._frame_begun = asyncio.get_running_loop().time()
        self._pump()
        if len(self._queue) > MAX_QUEUED_REPLIES or reader.blocked or self._backlog:
            self._pause_reading()

    def _handle_backlog(self) -> None:
        """Dispatch received requests in order while fewer than MAX_FETCHES_HELD fetch
        answers are held; the rest wait (reading paused) until answers are sent."""
        server = self.server
        backlog = self._backlog
        while backlog and self._fetches_held < MAX_FETCHES_HELD and not self._closed:
            meta, payload = backlog.popleft()
            try:
                request = parse_request(meta, payload)
            except FrameError as exc:
                self._abort(f"bad request: {exc}")
                return
            result = server.dispatch(request, self)
            if result is None:
                continue
            cid = request.header.correlation_id
            if isinstance(result, Reply):
                slot = _Slot(cid, result)
            elif isinstance(result, PendingReply):
                slot = _Slot(cid, None, pending=result)
                result._listener = self._pump
            else:
                task = asyncio.ensure_future(result)
                slot = _Slot(cid, None, task)
                task.add_done_callback(lambda _t: self._pump())
            if request.header.api_key == ApiKey.FETCH:
                slot.fetch = True
                self._fetches_held += 1
            self._queue.append(slot)

    def _fetch_answered(self) -> None:
        self._fetches_held -= 1
        if self._backlog and not self._handling_soon:
            self._handling_soon = True
            asyncio.get_running_loop().call_soon(self._handle_backlog_soon)

    def _handle_backlog_soon(self) -> None:
        self._handling_soon = False
        if self._closed:
            return
        self._handle_backlog()
        self._pump()
        self._resume_if_drained()

    # ------------------------------------------------------------------ request memory
    def try_reserve(self, nbytes: int) -> bool:
        """FrameBudget for our reader: a grant made while we waited, else the pool's."""
        if self._granted:
            granted, self._granted = self._granted, 0
            if granted == nbytes:
                return True
            self._memory.release(granted)
        if self._memory.try_reserve(nbytes):
            return True
        self._memory.wait(self, nbytes, self._memory_granted)
        return False

    def release(self, nbytes: int) -> None:
        self._memory.release(nbytes)

    def _memory_granted(self, nbytes: int) -> None:
        self._granted = nbytes
        # Not from inside the release (another connection's read): on the loop's next turn.
        asyncio.get_running_loop().call_soon(self._read_after_grant)

    def _read_after_grant(self) -> None:
        if self._closed:
            return
        self.buffer_updated(0)  # the frame waiting in scratch takes its reservation
        self._resume_if_drained()

    def _check_stall(self) -> None:
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        begun = self._frame_begun
        if begun is not None and not self._read_paused and \
                loop.time() - begun > self._receive_timeout:
            self.server.metrics.stalled_requests.inc()
            self._abort(f"a request frame did not arrive whole within "
                        f"request.receive.timeout.ms={int(self._receive_timeout * 1000)} "
                        f"({self._reader.buffered} bytes of it came)")
            return
        self._stall_check = loop.call_later(self._receive_timeout / 2, self._check_stall)

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._writer is not None:
            self._writer.paused()
        self._pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._writer is not None:
            self._writer.resumed()
        self._pump()
        self._resume_if_drained()

    def eof_received(self) -> bool:
        """The peer half-closed or closed (sent everything it will send): answer what it
        asked, parked fetches at once with what there is, then close. Kafka closes at once;
        TCP lets a half-closed peer still read its answers, and a closed one costs nothing
        more than those answers (its parked fetches do not wait out max_wait_ms)."""
        self._peer_done = True
        if self.idle and not self._backlog:
            return False  # nothing owed: close now
        for slot in list(self._queue):  # a parked fetch is answered now, not at max_wait
            pending = slot.pending
            if pending is not None and pending.reply is None and pending.on_hurry is not None:
                hurry, pending.on_hurry = pending.on_hurry, None
                hurry()
        return True  # keep the write side open until the queue drains (see _pump)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._stall_check is not None:
            self._stall_check.cancel()
        self._memory.cancel(self)
        if self._granted:
            self._memory.release(self._granted)
            self._granted = 0
        self._reader.abandon()
        if self._writer is not None:
            self._writer.close()
        while self._queue:
            slot = self._queue.popleft()
            if slot.reply is not None:
                slot.reply.release()
            elif slot.pending is not None:
                slot.pending.cancel()
            elif slot.task is not None:
                if not slot.task.done():
                    slot.task.cancel()  # a cancelled handler releases what it holds
                elif not slot.task.cancelled() and slot.task.exception() is None:
                    slot.task.result().release()
        self.server.connection_closed(self)

    # ------------------------------------------------------------------ replies
    def _pump(self) -> None:
        """Write every ready reply at the head of the FIFO, in order, while the transport
        takes them (see the back-pressure invariant)."""
        if self._sending or self._closed or self._transport is None:
            return
        out: list[bytes] = []
        size = 0
        queue = self._queue
        while queue and not self._write_paused:
            slot = queue[0]
            reply = slot.reply
            if reply is None:
                if slot.pending is not None:
                    reply = slot.pending.reply
                    if reply is None:
                        break
                else:
                    task = slot.task
                    assert task is not None
                    if not task.done():
                        break
                    reply = self._task_reply(task)
            queue.popleft()
            if slot.fetch:
                self._fetch_answered()
            if reply.regions and reply.payload_size < self._copy_below:
                reply = self._inline(reply)
            if reply.regions:
                if out:
                    self._transport.write(b"".join(out))
                    out = []
                self._start_sending(slot.correlation_id, reply)
                return
            try:
                head = encode_response_head(slot.correlation_id, reply.body,
                                            len(reply.payload))
            except (TypeError, ValueError, OverflowError) as exc:  # a handler's bug
                log.error("answer to %s cannot be encoded (%s): %.300r", self.peer, exc,
                          reply.body)
                reply = Reply({"error_code": -1, "error_message": "the broker could not "
                               "encode its answer; see its log"})
                head = encode_response_head(slot.correlation_id, reply.body)
            out.append(head)
            size += len(head)
            if reply.payload:
                out.append(reply.payload)
                size += len(reply.payload)
            if size >= WRITE_PIECE_BYTES:  # may call pause_writing, which ends the loop
                self._transport.write(b"".join(out))
                out = []
                size = 0
        if out:
            self._transport.write(b"".join(out) if len(out) > 1 else out[0])
        if not queue:
            if self._peer_done and not self._backlog and not self._sending:
                self._transport.close()  # the half-closed peer has every answer it asked for
                return
            self._resume_if_drained()
            self.server.connection_idle()

    def _resume_if_drained(self) -> None:
        if not self._sending and not self._write_paused and not self._reader.blocked and \
                not self._backlog and len(self._queue) <= MAX_QUEUED_REPLIES:
            self._resume_reading()

    def _task_reply(self, task: "asyncio.Task[Reply]") -> Reply:
        if task.cancelled():
            return self.server.error_reply_for(asyncio.CancelledError())
        exc = task.exception()
        if exc is not None:
            return self.server.error_reply_for(exc)
        return task.result()

    def _inline(self, reply: Reply) -> Reply:
        """A reply whose small file regions are read into its payload (fds released)."""
        try:
            data = b"".join(os.pread(r.fd, r.size, r.position) for r in reply.regions)
        finally:
            reply.release()
        self.server.metrics.copied_bytes.inc(len(data))
        return Reply(reply.body, reply.payload + data)

    def _start_sending(self, correlation_id: int, reply: Reply) -> None:
        self._sending = True
        self._pause_reading()
        head = encode_response_head(correlation_id, reply.body, reply.payload_size)
        if reply.payload:
            head += reply.payload
        assert self._writer is not None
        task = asyncio.ensure_future(self._writer.send_regions(head, reply.regions))
        task.add_done_callback(lambda t: self._sent(t, reply))

    def _sent(self, task: "asyncio.Task[None]", reply: Reply) -> None:
        reply.release()
        self._sending = False
        if task.cancelled() or task.exception() is not None:
            if not self._closed:
                exc = None if task.cancelled() else task.exception()
                self._abort(f"sending file data failed: {exc}")
            return
        if not self._closed:
            self._pump()
            self._resume_if_drained()

    # ------------------------------------------------------------------ helpers
    def _pause_reading(self) -> None:
        if not self._read_paused and self._transport is not None and not self._closed:
            self._read_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and self._transport is not None and not self._closed:
            self._read_paused = False
            self._transport.resume_reading()
            if self._reader.buffered:  # the receive clock counts only while we read
                self._frame_begun = asyncio.get_running_loop().time()

    def _abort(self, reason: str) -> None:
        log.warning("closing connection from %s: %s", self.peer, reason)
        self.server.metrics.connections_rejected.inc()
        self._closed = True
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        if self._transport is not None and not self._closed:
            self._transport.close()

    @property
    def idle(self) -> bool:
        return not self._queue and not self._sending
