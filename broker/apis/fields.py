"""Reading the fields of client request bodies (plain msgpack maps), type and range checked.

Invariant: a handler that reads its body through these gets exactly the types it expects:
integers that are ints (not floats, not bools) within int64, so they can be compared, used as
indexes and sent back; strings that are strings (a topic name can be hashed); maps that are
maps; and lists no longer than their cap, so the length of one request's work is bounded
before any of it is done. A field that breaks this raises InvalidRequestError naming the
field; the request is answered INVALID_REQUEST. Pure functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from klamm.protocol.errors import InvalidRequestError

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

# Caps on the entries of one request (Kafka has none but the frame size; one frame of
# socket.request.max.bytes could otherwise hold millions).
MAX_TOPICS = 10_000  # topic names or topic entries in one request
MAX_PARTITIONS = 100_000  # partition entries in one produce, fetch or list-offsets request
MAX_RESOURCES = 1_000  # DESCRIBE_CONFIGS / ALTER_CONFIGS resources
MAX_NEW_PARTITIONS = 10_000  # partitions one CREATE_TOPICS request may create

_MISSING: Any = object()


def _kind(value: Any) -> str:
    return type(value).__name__


def body_map(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequestError(f"the request body must be a map, got {_kind(value)}")
    return value


def integer(obj: Mapping[str, Any], key: str, default: int = _MISSING, *,
            low: int = INT64_MIN, high: int = INT64_MAX) -> int:
    value = obj.get(key, default)
    if value is _MISSING:
        raise InvalidRequestError(f"field {key!r} is missing")
    if type(value) is not int:
        raise InvalidRequestError(f"field {key!r} must be an integer, got {_kind(value)}")
    if not low <= value <= high:
        raise InvalidRequestError(f"field {key!r} must be in [{low}, {high}], got {value}")
    return value


def flag(obj: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = obj.get(key, default)
    if type(value) is not bool:
        raise InvalidRequestError(f"field {key!r} must be true or false, got {_kind(value)}")
    return value


def text(obj: Mapping[str, Any], key: str, default: str = _MISSING) -> str:
    value = obj.get(key, default)
    if value is _MISSING:
        raise InvalidRequestError(f"field {key!r} is missing")
    if not isinstance(value, str):
        raise InvalidRequestError(f"field {key!r} must be a string, got {_kind(value)}")
    return value


def sequence(obj: Mapping[str, Any], key: str, limit: int) -> Sequence[Any]:
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        raise InvalidRequestError(f"field {key!r} is missing")
    if not isinstance(value, (list, tuple)):
        raise InvalidRequestError(f"field {key!r} must be a list, got {_kind(value)}")
    if len(value) > limit:
        raise InvalidRequestError(f"field {key!r} has {len(value)} entries; at most {limit} "
                                  f"are allowed in one request")
    return value


def entries(obj: Mapping[str, Any], key: str, limit: int) -> Sequence[Mapping[str, Any]]:
    """A list of maps, at most ``limit`` long."""
    return _each(obj, key, limit, dict, "a map")


def strings(obj: Mapping[str, Any], key: str, limit: int) -> Sequence[str]:
    return _each(obj, key, limit, str, "a string")


def _each(obj: Mapping[str, Any], key: str, limit: int, kind: type, what: str
          ) -> Sequence[Any]:
    items = sequence(obj, key, limit)
    for item in items:
        if not isinstance(item, kind):
            raise InvalidRequestError(f"each entry of {key!r} must be {what}, got "
                                      f"{_kind(item)}")
    return items


def string_map(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    """A map with string keys (configs); absent or null reads as empty."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InvalidRequestError(f"field {key!r} must be a map with string keys")
    return value


def topic_partitions(obj: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    """The ``topics`` of a produce, fetch or list-offsets body: maps with a string ``topic``
    and a list of ``partitions`` maps, MAX_PARTITIONS entries in all."""
    topics = entries(obj, "topics", MAX_TOPICS)
    total = 0
    for t in topics:
        text(t, "topic")
        total += len(entries(t, "partitions", MAX_PARTITIONS))
        if total > MAX_PARTITIONS:
            raise InvalidRequestError(f"the request names more than {MAX_PARTITIONS} "
                                      f"partitions; split it")
    return topics


def topic_partitions_lists(obj: Mapping[str, Any], key: str) -> Sequence[Mapping[str, Any]]:
    """``[{topic, partitions: [int]}]`` (partitions as bare numbers, as ElectLeaders names
    them), MAX_PARTITIONS numbers in all, each a non-negative int."""
    topics = entries(obj, key, MAX_TOPICS)
    total = 0
    for t in topics:
        text(t, "topic")
        numbers = sequence(t, "partitions", MAX_PARTITIONS)
        if not all(type(p) is int and 0 <= p <= INT64_MAX for p in numbers):
            raise InvalidRequestError(f"each entry of {key!r} must list its partitions as "
                                      f"non-negative integers")
        total += len(numbers)
        if total > MAX_PARTITIONS:
            raise InvalidRequestError(f"the request names more than {MAX_PARTITIONS} "
                                      f"partitions; split it")
    return topics
