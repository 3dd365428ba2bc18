"""Base class for every configuration object (broker, topic, producer, consumer, zk).

Users write Kafka's dotted names (``linger.ms``) or Python names (``linger_ms``); both reach the
same field. Unknown keys are rejected with a message that names each of them and the closest
known key, and pydantic's own errors already name the offending field.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


class ConfigError(ValueError):
    """A configuration was rejected; the message names every offending key."""


def parse_host_port(value: str, option: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` from a command line (an empty host means 127.0.0.1)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{option} must look like HOST:PORT, got {value!r}")
    return host or "127.0.0.1", int(port)


def parse_overrides(items: Sequence[str], option: str = "--override") -> dict[str, str]:
    """``KEY=VALUE`` items from a command line, in order (a later key wins)."""
    values: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} must look like key=value, got {item!r}")
        values[key.strip()] = value.strip()
    return values


def dotted(name: str) -> str:
    return name.replace("_", ".")


class KlammConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _accept_dotted_names(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        fields = cls.model_fields
        by_dotted = {dotted(name): name for name in fields}
        out: dict[str, Any] = {}
        unknown: list[str] = []
        for key, value in data.items():
            if not isinstance(key, str):
                unknown.append(repr(key))
                continue
            name = key if key in fields else by_dotted.get(key) or by_dotted.get(
                key.replace("-", "."))
            if name is None:
                unknown.append(key)
                continue
            if name in out:
                raise ValueError(f"configuration key {key!r} given twice (as {dotted(name)!r} "
                                 f"and {name!r})")
            out[name] = value
        if unknown:
            hints = []
            for key in unknown:
                close = difflib.get_close_matches(key, list(by_dotted), n=1)
                hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(f"unknown configuration key(s) for {cls.__name__}: "
                             + ", ".join(hints))
        return out

    @classmethod
    def build(cls, values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Self:
        """Validate ``values`` merged with ``kwargs``; raises ConfigError naming bad keys."""
        merged: dict[str, Any] = dict(values or {})
        merged.update(kwargs)
        try:
            return cls.model_validate(merged)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(cls.__name__, exc)) from None

    def with_overrides(self, values: Mapping[str, Any]) -> Self:
        """A copy with ``values`` applied, validated as a whole."""
        base = self.model_dump()
        return type(self).build(base, **{_field_name(type(self), k): v for k, v in
                                         values.items()})

    def as_dotted(self) -> dict[str, Any]:
        return {dotted(k): v for k, v in self.model_dump().items()}


def _field_name(cls: type[KlammConfig], key: str) -> str:
    if key in cls.model_fields:
        return key
    for name in cls.model_fields:
        if dotted(name) == key:
            return name
    return key  # unknown: validation names it


def describe_validation_error(owner: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        key = dotted(loc) if loc else ""
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        parts.append(f"{key}: {msg}" if key else msg)
    return f"invalid {owner}: " + "; ".join(parts)
