"""Every exception a client raises.

Broker error codes map one-to-one to the classes in ``klamm.protocol.errors`` (re-exported here);
the classes below are raised by the client itself, before or instead of a broker answer.
"""

from __future__ import annotations

from typing import Any

from klamm.protocol.errors import *  # noqa: F401,F403 - the broker error classes are public API
from klamm.protocol.errors import ERROR_CLASSES, KlammError, error_for  # noqa: F401

from .serializers import SerializationError


class ClientError(Exception):
    """Raised by the client without a broker error code."""

    retriable = False


class KlammConnectionError(ClientError):
    """The connection to a broker failed or was lost; retry after reconnecting."""

    retriable = True


class NotABrokerError(KlammConnectionError):
    """The peer answered the first exchange, but not as a Klamm broker (a coordination
    service's port, another protocol, nothing at all)."""


class KlammTimeoutError(ClientError):
    """A request got no answer within request.timeout.ms (the connection is closed)."""

    retriable = True


class NoBrokersAvailable(ClientError):
    """None of the bootstrap servers answered; check bootstrap.servers and that a broker runs."""

    retriable = True


class ClientClosedError(ClientError):
    """The client was stopped; create a new one."""


class MessageSizeTooLargeError(ClientError):
    """A record is larger than max.request.size (or buffer.memory); it was not queued."""


class BufferExhaustedError(KlammTimeoutError):
    """send() waited max.block.ms for buffer.memory to free up; the record was not queued."""


class ProducerClosedError(ClientClosedError):
    """send() after stop(): the record was not queued."""


class ConsumerStoppedError(ClientClosedError):
    """The consumer was stopped (possibly while this call waited); create a new one."""


class ConsumerWakeup(ClientError):
    """wakeup() interrupted a poll; the consumer is still usable, poll again when ready."""


class GroupsNotAvailableError(ClientError):
    """Consumer groups (subscribe, commit, committed) are not available in this version."""


class NoOffsetForPartitionError(ClientError):
    """A partition has no position and auto.offset.reset is "none": seek() to an offset."""


class RecordDeserializationError(SerializationError):
    """A key or value deserializer failed on one record; records before it were delivered.

    The position stays at ``offset``: ``seek(tp, offset + 1)`` skips the record, or fix the
    deserializer (key.deserializer / value.deserializer) and poll again.
    """

    def __init__(self, tp: Any, offset: int, what: str, exc: Exception) -> None:
        super().__init__(
            f"cannot deserialize the {what} of {tp.topic}-{tp.partition} offset {offset}: "
            f"{type(exc).__name__}: {exc}; seek to {offset + 1} to skip this record or fix "
            f"the {what}.deserializer")
        self.tp = tp
        self.offset = offset
