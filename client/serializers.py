"""Key and value (de)serializers: bytes, str, JSON, msgpack, pydantic models, or any callable.

A serializer is anything callable as ``f(obj) -> bytes | None``; a deserializer is
``f(bytes) -> obj``. ``resolve_*`` turns the names users pass in configs ("str", "json") into
callables; None means identity, which lets the hot paths skip the call entirely.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import msgpack
from pydantic import BaseModel

Serializer = Callable[[Any], bytes | None]
Deserializer = Callable[[bytes], Any]
M = TypeVar("M", bound=BaseModel)


class SerializationError(ValueError):
    """A key or value could not be (de)serialized; nothing was queued or returned."""


def _bytes(obj: Any) -> bytes | None:
    if obj is None or isinstance(obj, bytes):
        return obj
    if isinstance(obj, (bytearray, memoryview)):
        return bytes(obj)
    raise SerializationError(f"expected bytes, got {type(obj).__name__}; configure a "
                             f"serializer (e.g. value_serializer='str' or 'json')")


def _str(obj: Any) -> bytes | None:
    return None if obj is None else str(obj).encode("utf-8")


def _json(obj: Any) -> bytes | None:
    return None if obj is None else json.dumps(obj, separators=(",", ":")).encode("utf-8")


def _msgpack(obj: Any) -> bytes | None:
    return None if obj is None else msgpack.packb(obj, use_bin_type=True)


SERIALIZERS: dict[str, Serializer] = {"bytes": _bytes, "str": _str, "json": _json,
                                      "msgpack": _msgpack}
DESERIALIZERS: dict[str, Deserializer] = {
    "str": lambda b: b.decode("utf-8"),
    "json": lambda b: json.loads(b),
    "msgpack": lambda b: msgpack.unpackb(b, raw=False),
}


def pydantic_serializer(model: type[BaseModel]) -> Serializer:
    def serialize(obj: Any) -> bytes | None:
        if obj is None:
            return None
        if not isinstance(obj, model):
            raise SerializationError(f"expected {model.__name__}, got {type(obj).__name__}")
        return obj.model_dump_json().encode("utf-8")
    return serialize


def pydantic_deserializer(model: type[M]) -> Callable[[bytes], M]:
    return model.model_validate_json


def resolve_serializer(spec: Any) -> Serializer | None:
    """None for plain bytes (no call on the hot path), else a callable."""
    return _resolve(spec, "serializer", SERIALIZERS, pydantic_serializer)


def resolve_deserializer(spec: Any) -> Deserializer | None:
    return _resolve(spec, "deserializer", DESERIALIZERS, pydantic_deserializer)


def _resolve(spec: Any, kind: str, named: dict[str, Any],
             for_model: Callable[[Any], Any]) -> Any:
    if spec is None or spec == "bytes":
        return None
    if isinstance(spec, str):
        try:
            return named[spec]
        except KeyError:
            names = ", ".join(["bytes", *(n for n in named if n != "bytes")])
            raise ValueError(f"unknown {kind} {spec!r}; use one of {names} or a "
                             f"callable") from None
    if isinstance(spec, type) and issubclass(spec, BaseModel):
        return for_model(spec)
    if callable(spec):
        return spec
    raise ValueError(f"a {kind} must be a name or a callable, got {spec!r}")


def apply(serializer: Serializer | None, obj: Any, what: str) -> bytes | None:
    """Run a serializer, turning any failure into SerializationError naming ``what``."""
    if serializer is None:
        return _bytes(obj)
    try:
        return serializer(obj)
    except SerializationError:
        raise
    except Exception as exc:
        raise SerializationError(f"cannot serialize {what}: {type(exc).__name__}: {exc}") from exc
