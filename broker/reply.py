"""What a request handler returns: a ``Reply`` now, a ``PendingReply`` that someone fills in
later (a parked fetch), or an awaitable of a Reply (an fsync, an acks=all wait).

Invariant: every file region a Reply carries is released exactly once (``release``: sent,
inlined, or dropped with the connection), so descriptors never leak; a PendingReply is
resolved at most once, and ``cancel`` unparks whatever would have resolved it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .sendfile import Region


class Reply:
    """An answer: a msgpack body plus optional raw bytes or file regions sent after it."""

    __slots__ = ("body", "payload", "regions", "on_sent")

    def __init__(self, body: Any, payload: bytes = b"", regions: Sequence[Region] = (),
                 on_sent: Callable[[], None] | None = None) -> None:
        self.body = body
        self.payload = payload
        self.regions = regions
        self.on_sent = on_sent

    @property
    def payload_size(self) -> int:
        return len(self.payload) + sum(r.size for r in self.regions)

    def release(self) -> None:
        if self.on_sent is not None:
            self.on_sent()
            self.on_sent = None


class PendingReply:
    """A reply that arrives later without a task: whoever makes it calls ``resolve`` once.

    ``on_cancel`` runs if the connection goes away first (to unpark whatever would resolve it).
    """

    __slots__ = ("reply", "on_cancel", "on_hurry", "_listener")

    def __init__(self) -> None:
        self.reply: Reply | None = None
        self.on_cancel: Callable[[], None] | None = None
        # Answer now with what there is (the peer half-closed: it will not wait).
        self.on_hurry: Callable[[], None] | None = None
        self._listener: Callable[[], None] | None = None

    def resolve(self, reply: Reply) -> None:
        if self.reply is not None:
            reply.release()
            raise RuntimeError("a pending reply was resolved twice")
        self.reply = reply
        if self._listener is not None:
            self._listener()

    def cancel(self) -> None:
        if self.reply is not None:
            self.reply.release()
        elif self.on_cancel is not None:
            self.on_cancel()
        self.on_cancel = self._listener = None


HandlerResult = Reply | PendingReply | Awaitable[Reply] | None
