"""Every exception a client raises.

Broker error codes map one-to-one to the classes in ``klamm.protocol.errors`` (re-exported here);
the classes below are raised by the client itself, before or instead of a broker answer.
"""

from __future__ import annotations

from klamm.protocol.errors import *  # noqa: F401,F403 - the broker error classes are public API
from klamm.protocol.errors import ERROR_CLASSES, KlammError, error_for  # noqa: F401


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
