"""Error codes of the coordination service and one exception class per code.

Kept apart from the broker's table (``klamm.protocol.errors``) because the coordination
service is its own protocol: a future etcd backend maps its failures onto these same
exceptions, and brokers catch them without knowing which engine is underneath.
"""

from __future__ import annotations

from enum import IntEnum


class ZkErrorCode(IntEnum):
    OK = 0
    NO_NODE = 1
    NODE_EXISTS = 2
    BAD_VERSION = 3
    NOT_EMPTY = 4
    NO_CHILDREN_FOR_EPHEMERALS = 5
    BAD_ARGUMENTS = 6
    DATA_TOO_LARGE = 7
    SESSION_EXPIRED = 8
    SESSION_MOVED = 9
    UNKNOWN_OP = 10
    INVALID_REQUEST = 11
    CONNECTION_LOSS = 12
    SYSTEM_ERROR = 13


class ZkError(Exception):
    """Base of every coordination-service error; ``code`` says which."""

    code: ZkErrorCode = ZkErrorCode.SYSTEM_ERROR
    hint = "unexpected error in the coordination service; check its log"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.hint)
        self.message = message or self.hint


class NotACoordinationServiceError(ZkError):
    """The peer answered the session handshake, but not as a coordination service."""

    code = ZkErrorCode.CONNECTION_LOSS
    hint = "the peer is not a coordination service"


class NoNodeError(ZkError):
    code = ZkErrorCode.NO_NODE
    hint = "the node does not exist"


class NodeExistsError(ZkError):
    code = ZkErrorCode.NODE_EXISTS
    hint = "the node already exists"


class BadVersionError(ZkError):
    code = ZkErrorCode.BAD_VERSION
    hint = "the node's version differs from the expected one; re-read and retry"


class NotEmptyError(ZkError):
    code = ZkErrorCode.NOT_EMPTY
    hint = "the node has children; delete them first or pass recursive=True"


class NoChildrenForEphemeralsError(ZkError):
    code = ZkErrorCode.NO_CHILDREN_FOR_EPHEMERALS
    hint = "ephemeral nodes cannot have children"


class BadArgumentsError(ZkError):
    code = ZkErrorCode.BAD_ARGUMENTS
    hint = "invalid path or argument"


class DataTooLargeError(ZkError):
    code = ZkErrorCode.DATA_TOO_LARGE
    hint = "node data exceeds the service's max.node.bytes"


class SessionExpiredError(ZkError):
    code = ZkErrorCode.SESSION_EXPIRED
    hint = "the session expired; its ephemeral nodes and watches are gone"


class SessionMovedError(ZkError):
    code = ZkErrorCode.SESSION_MOVED
    hint = "the session was re-attached on another connection"


class UnknownOpError(ZkError):
    code = ZkErrorCode.UNKNOWN_OP
    hint = "the service does not know this operation"


class InvalidRequestError(ZkError):
    code = ZkErrorCode.INVALID_REQUEST
    hint = "the request is malformed"


class ConnectionLossError(ZkError):
    code = ZkErrorCode.CONNECTION_LOSS
    hint = "the connection to the coordination service was lost; the outcome is unknown"


class SystemZkError(ZkError):
    code = ZkErrorCode.SYSTEM_ERROR


_BY_CODE: dict[int, type[ZkError]] = {cls.code: cls for cls in (
    NoNodeError, NodeExistsError, BadVersionError, NotEmptyError, NoChildrenForEphemeralsError,
    BadArgumentsError, DataTooLargeError, SessionExpiredError, SessionMovedError,
    UnknownOpError, InvalidRequestError, ConnectionLossError, SystemZkError)}


def error_for(code: int, message: str = "") -> ZkError:
    """The exception for a wire error code (unknown codes become SystemZkError)."""
    return _BY_CODE.get(code, SystemZkError)(message)
