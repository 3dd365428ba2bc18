"""Producer settings (Kafka's names and, where sane, Kafka's defaults)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from klamm.protocol.compression import Compression

from ..config import CommonClientConfig


class ProducerConfig(CommonClientConfig):
    # metadata.max.age.ms: the producer refreshes the metadata of its topics that often, so
    # it learns of added partitions (and moved leaders) without an error first.
    IMPLEMENTED_HERE: ClassVar[frozenset[str]] = frozenset({"metadata_max_age_ms"})

    client_id: str = "klamm-producer"
    acks: Literal[0, 1, -1] = -1
    linger_ms: int = Field(5, ge=0)
    batch_size: int = Field(16384, ge=1)
    buffer_memory: int = Field(32 * 1024 * 1024, ge=1024)
    max_block_ms: int = Field(60_000, ge=0)
    max_request_size: int = Field(1024 * 1024, ge=1024)
    compression_type: Literal["none", "gzip", "lz4", "zstd"] = "none"
    retries: int = Field(2**31 - 1, ge=0)
    delivery_timeout_ms: int = Field(120_000, ge=1)
    max_in_flight_requests_per_connection: int = Field(5, ge=1)
    allow_auto_create_topics: bool = True
    enable_idempotence: bool = False
    key_serializer: Any = None
    value_serializer: Any = None

    @field_validator("acks", mode="before")
    @classmethod
    def _acks(cls, v: Any) -> Any:
        if v in ("all", "-1", -1):
            return -1
        if isinstance(v, str) and v.strip().lstrip("-").isdigit():
            return int(v)
        return v

    @field_validator("enable_idempotence")
    @classmethod
    def _no_idempotence_yet(cls, v: bool) -> bool:
        if v:
            raise ValueError("idempotence (producer ids and sequence numbers) is not available "
                             "in this version; leave enable.idempotence false")
        return v

    @property
    def compression(self) -> Compression:
        return Compression.parse(self.compression_type)
