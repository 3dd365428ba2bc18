"""Typed message bodies: frozen dataclasses that turn into msgpack maps and back, checked.

A message class is a ``@message`` dataclass whose fields are ``int``, ``bool``, ``str``,
``bytes``, ``float``, another message class, ``X | None``, ``list[X]`` or ``dict[str, X]``.
An ``int`` is a signed 64-bit integer, ``int32`` (ids, partition indexes, epochs, as Kafka
sizes them) a signed 32-bit one: a value outside its range is malformed, not something a
later ``struct.pack`` or comparison trips over.
``to_wire`` gives the plain dict msgpack packs; ``from_wire(cls, body)`` rebuilds the object
and raises :class:`MalformedMessage` naming the path of the first field that is missing or of
the wrong type (the dispatcher answers INVALID_REQUEST with that text). Unknown keys are
ignored and fields with defaults may be absent, so a newer peer can add fields an older one
does not know. Pure: no I/O, no state beyond a per-class cache of resolved field types.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, dataclass_transform

T = TypeVar("T")


class MalformedMessage(ValueError):
    """A body does not match its message type; the text names the offending field."""


@dataclasses.dataclass(frozen=True, slots=True)
class IntRange:
    name: str
    low: int
    high: int


INT64 = IntRange("int64", -(1 << 63), (1 << 63) - 1)
INT32 = IntRange("int32", -(1 << 31), (1 << 31) - 1)
int32 = Annotated[int, INT32]


@dataclass_transform(frozen_default=True)
def message(cls: type[T]) -> type[T]:
    """Declare a message class: a frozen, slotted dataclass the codec knows (and that type
    checkers see as one: constructors and fields are checked)."""
    return dataclasses.dataclass(frozen=True, slots=True)(cls)


Decoder = Callable[[Any, str], Any]
_decoders: dict[Any, Decoder] = {}


def to_wire(obj: Any) -> Any:
    """The msgpack-ready form of a message (dicts, lists and scalars only)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_wire(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_wire(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_wire(v) for k, v in obj.items()}
    return obj


def from_wire(cls: type[T], body: Any) -> T:
    """Rebuild a message of type ``cls``; raises MalformedMessage naming the bad field."""
    result: T = _decoder_for(cls)(body, cls.__name__)
    return result


def _decoder_for(tp: Any) -> Decoder:
    found = _decoders.get(tp)
    if found is None:
        found = _build(tp)
        _decoders[tp] = found
    return found


def _ranged(bounds: IntRange) -> Decoder:
    is_int = _scalar(int, "int")

    def decode(value: Any, path: str) -> Any:
        value = is_int(value, path)
        if not bounds.low <= value <= bounds.high:
            raise MalformedMessage(f"{path}: {value} is out of range for {bounds.name} "
                                   f"[{bounds.low}, {bounds.high}]")
        return value
    return decode


def _scalar(kind: type, name: str) -> Decoder:
    def decode(value: Any, path: str) -> Any:
        # bool is an int in Python: refuse it where an int is meant, and vice versa
        if type(value) is bool and kind is not bool:
            raise MalformedMessage(f"{path}: expected {name}, got bool")
        if isinstance(value, kind):
            return value
        if kind is float and type(value) is int:
            return float(value)
        raise MalformedMessage(f"{path}: expected {name}, got {type(value).__name__}")
    return decode


def _build(tp: Any) -> Decoder:
    if tp is int:
        return _ranged(INT64)
    if tp is bool:
        return _scalar(bool, "bool")
    if tp is str:
        return _scalar(str, "str")
    if tp is float:
        return _scalar(float, "float")
    if tp is bytes:
        def decode_bytes(value: Any, path: str) -> Any:
            if isinstance(value, (bytes, bytearray, memoryview)):
                return bytes(value)
            raise MalformedMessage(f"{path}: expected bytes, got {type(value).__name__}")
        return decode_bytes
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Annotated:
        base, *extras = args
        bounds = [e for e in extras if isinstance(e, IntRange)]
        if base is not int or len(bounds) != 1:
            raise TypeError(f"unsupported annotated field type {tp!r}")
        return _ranged(bounds[0])
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) != 1:
            raise TypeError(f"unsupported union {tp!r}")
        inner = _decoder_for(options[0])

        def decode_optional(value: Any, path: str) -> Any:
            return None if value is None else inner(value, path)
        return decode_optional
    if origin is list:
        item = _decoder_for(args[0])

        def decode_list(value: Any, path: str) -> Any:
            if not isinstance(value, (list, tuple)):
                raise MalformedMessage(f"{path}: expected a list, got {type(value).__name__}")
            return [item(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return decode_list
    if origin is dict:
        key_type, value_type = args
        if key_type is not str:
            raise TypeError(f"message maps must have str keys, not {key_type!r}")
        val = _decoder_for(value_type)

        def decode_map(value: Any, path: str) -> Any:
            if not isinstance(value, dict):
                raise MalformedMessage(f"{path}: expected a map, got {type(value).__name__}")
            out = {}
            for k, v in value.items():
                if not isinstance(k, str):
                    raise MalformedMessage(f"{path}: map keys must be strings, got {k!r}")
                out[k] = val(v, f"{path}.{k}")
            return out
        return decode_map
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build_message(tp)
    raise TypeError(f"unsupported message field type {tp!r}")


def _build_message(cls: type) -> Decoder:
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = []
    for f in dataclasses.fields(cls):
        required = (f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING)
        fields.append((f.name, hints[f.name], required))

    def decode_message(value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise MalformedMessage(f"{path}: expected a map, got {type(value).__name__}")
        kwargs = {}
        for name, hint, required in fields:
            if name in value:
                kwargs[name] = _decoder_for(hint)(value[name], f"{path}.{name}")
            elif required:
                raise MalformedMessage(f"{path}.{name}: missing")
        return cls(**kwargs)
    return decode_message
