"""Settings common to every client (producer, consumer, admin)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from klamm.protocol.config import KlammConfig


def parse_bootstrap(value: Any) -> list[tuple[str, int]]:
    """``"h1:9092,h2:9093"`` or a list of ``"host:port"`` -> [(host, port)]."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[tuple[str, int]] = []
    for item in items:
        if isinstance(item, tuple):
            out.append((str(item[0]), int(item[1])))
            continue
        item = str(item).strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"bootstrap server {item!r} must look like host:port")
        out.append((host.strip("[]") or "localhost", int(port)))
    if not out:
        raise ValueError("bootstrap.servers is empty")
    return out


class CommonClientConfig(KlammConfig):
    bootstrap_servers: list[tuple[str, int]] = Field(
        default_factory=lambda: [("localhost", 9092)])
    client_id: str = "klamm-client"
    request_timeout_ms: int = Field(30_000, ge=1)
    metadata_max_age_ms: int = Field(300_000, ge=0)
    reconnect_backoff_ms: int = Field(50, ge=0)
    reconnect_backoff_max_ms: int = Field(1000, ge=0)
    retry_backoff_ms: int = Field(100, ge=0)
    connections_max_idle_ms: int = Field(540_000, ge=0)
    socket_request_max_bytes: int = Field(100 * 1024 * 1024, ge=1024)

    # Settings of the list above that this kind of client acts on; the others refuse
    # anything but their default (a key accepted and ignored would be a stand-in).
    IMPLEMENTED_HERE: ClassVar[frozenset[str]] = frozenset()

    @field_validator("metadata_max_age_ms", "connections_max_idle_ms")
    @classmethod
    def _not_yet(cls, v: int, info: Any) -> int:
        default = cls.model_fields[info.field_name].default
        if v != default and info.field_name not in cls.IMPLEMENTED_HERE:
            what = {"metadata_max_age_ms": "this client refreshes metadata on errors only",
                    "connections_max_idle_ms": "idle connections stay open"}[info.field_name]
            raise ValueError(f"not implemented in this version for this client ({what}); "
                             f"leave it at its default {default}")
        return v

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _parse_bootstrap(cls, value: Any) -> list[tuple[str, int]]:
        return parse_bootstrap(value)
