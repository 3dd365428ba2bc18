"""Klamm's coordination service: a ZooKeeper-style tree with sessions, ephemeral and
sequential nodes, watches and durable storage, plus a kazoo-style async client."""

from .client import ZkClient
from .coordination import Coordination
from .election import LeaderElection
from .errors import (BadArgumentsError, BadVersionError, ConnectionLossError,
                     DataTooLargeError, NodeExistsError, NoNodeError, NotEmptyError,
                     SessionExpiredError, ZkError)
from .events import EventType, SessionState, WatchedEvent, WatchQueue
from .ops import Check, Create, Delete, SetData
from .tree import Stat

__all__ = [
    "BadArgumentsError", "BadVersionError", "Check", "ConnectionLossError", "Coordination",
    "Create", "DataTooLargeError", "Delete", "EventType", "LeaderElection", "NoNodeError",
    "NodeExistsError", "NotEmptyError", "SessionExpiredError", "SessionState", "SetData",
    "Stat", "WatchQueue", "WatchedEvent", "ZkClient", "ZkError",
]
