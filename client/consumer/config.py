"""Consumer settings: Kafka's names (dotted or Python style) and Kafka's defaults."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..config import CommonClientConfig
from ..serializers import resolve_deserializer


class ConsumerConfig(CommonClientConfig):
    client_id: str = "klamm-consumer"
    group_id: str | None = None
    group_instance_id: str | None = None
    fetch_min_bytes: int = Field(1, ge=0)
    fetch_max_wait_ms: int = Field(500, ge=0)
    fetch_max_bytes: int = Field(50 * 1024 * 1024, ge=1)
    max_partition_fetch_bytes: int = Field(1024 * 1024, ge=1)
    max_poll_records: int = Field(500, ge=1)
    auto_offset_reset: Literal["earliest", "latest", "none"] = "latest"
    enable_auto_commit: bool = True
    auto_commit_interval_ms: int = Field(5000, ge=0)
    session_timeout_ms: int = Field(45_000, ge=1)
    heartbeat_interval_ms: int = Field(3000, ge=1)
    max_poll_interval_ms: int = Field(300_000, ge=1)
    isolation_level: Literal["read_uncommitted", "read_committed"] = "read_uncommitted"
    check_crcs: bool = True
    key_deserializer: Any = None
    value_deserializer: Any = None

    @field_validator("key_deserializer", "value_deserializer")
    @classmethod
    def _known_deserializer(cls, v: Any) -> Any:
        resolve_deserializer(v)  # raises ValueError naming the accepted choices
        return v

    @field_validator("group_id", "group_instance_id")
    @classmethod
    def _no_groups_yet(cls, v: str | None, info: Any) -> str | None:
        # Without group.id the other group settings (enable.auto.commit, session.timeout.ms,
        # heartbeat.interval.ms, max.poll.interval.ms) have no effect, as in Kafka.
        if v is not None:
            raise ValueError(f"consumer groups are not available in this version; leave "
                             f"{info.field_name.replace('_', '.')} unset and choose partitions "
                             f"with consumer.assign()")
        return v

    @field_validator("enable_auto_commit", "auto_commit_interval_ms", "max_poll_interval_ms")
    @classmethod
    def _group_settings_at_defaults(cls, v: Any, info: Any) -> Any:
        default = cls.model_fields[info.field_name].default
        if v != default:
            raise ValueError(f"has no effect without consumer groups, which are not available "
                             f"in this version; leave it at its default {default}")
        return v

    @model_validator(mode="after")
    def _heartbeat_below_session(self) -> "ConsumerConfig":
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError(f"heartbeat.interval.ms ({self.heartbeat_interval_ms}) must be "
                             f"lower than session.timeout.ms ({self.session_timeout_ms}); "
                             f"a third of it is usual")
        return self
