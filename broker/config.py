"""Broker configuration and per-topic configuration.

A topic's effective config is the broker's ``log.*`` defaults overlaid with the topic's own
overrides (``TopicConfig.effective``). Names follow Kafka's, so an existing user can carry
settings over; Python spellings (``segment_bytes``) are accepted too.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Mapping

from pydantic import Field, field_validator

from klamm.protocol.config import ConfigError, KlammConfig

DAY_MS = 24 * 60 * 60 * 1000
NEVER = 2**63 - 1

TOPIC_NAME = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


def validate_topic_name(name: str) -> str | None:
    """None when ``name`` is a legal topic name, otherwise the reason it is not."""
    if not isinstance(name, str) or not TOPIC_NAME.match(name):
        return f"topic name {name!r} must be 1-249 characters of [a-zA-Z0-9._-]"
    if name in (".", ".."):
        return f"topic name {name!r} is reserved"
    return None


CleanupPolicy = Literal["delete", "compact", "compact,delete", "delete,compact"]
TimestampType = Literal["CreateTime", "LogAppendTime"]


class TopicConfig(KlammConfig):
    """Settings one topic may override (``klamm topics create --config k=v``)."""

    segment_bytes: int = Field(1024**3, ge=1024)
    segment_ms: int = Field(7 * DAY_MS, ge=1)
    segment_index_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    index_interval_bytes: int = Field(4096, ge=0)
    retention_ms: int = Field(7 * DAY_MS, ge=-1)
    retention_bytes: int = Field(-1, ge=-1)
    cleanup_policy: CleanupPolicy = "delete"
    delete_retention_ms: int = Field(DAY_MS, ge=0)
    min_compaction_lag_ms: int = Field(0, ge=0)
    file_delete_delay_ms: int = Field(60_000, ge=0)
    flush_messages: int = Field(NEVER, ge=1)
    flush_ms: int = Field(NEVER, ge=0)
    max_message_bytes: int = Field(1024 * 1024 + 12, ge=0)
    message_timestamp_type: TimestampType = "CreateTime"
    message_timestamp_difference_max_ms: int = Field(NEVER, ge=0)
    min_insync_replicas: int = Field(1, ge=1)
    unclean_leader_election_enable: bool = False

    @field_validator("cleanup_policy", mode="before")
    @classmethod
    def _strip_policy(cls, v: Any) -> Any:
        return v.replace(" ", "") if isinstance(v, str) else v

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def delete(self) -> bool:
        return "delete" in self.cleanup_policy

    @classmethod
    def effective(cls, broker: "BrokerConfig", overrides: Mapping[str, Any]) -> "TopicConfig":
        """Broker defaults overlaid with a topic's overrides; raises ConfigError naming keys."""
        return broker.topic_defaults().with_overrides(overrides)

    @classmethod
    def check_overrides(cls, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """Normalise override keys to dotted names and validate each value."""
        out: dict[str, Any] = {}
        for key, value in overrides.items():
            name = key.replace("-", ".").replace("_", ".")
            field = name.replace(".", "_")
            if field not in cls.model_fields:
                cls.build({key: value})  # raises with a did-you-mean hint
            cls.build({field: value})
            out[name] = value
        return out


class BrokerConfig(KlammConfig):
    """One broker's settings; ``log.*`` keys are the defaults of every topic."""

    broker_id: int = Field(0, ge=0)
    host: str = "127.0.0.1"
    port: int = Field(9092, ge=0, le=65535)
    advertised_host: str | None = None
    advertised_port: int | None = Field(None, ge=1, le=65535)
    broker_rack: str | None = None
    log_dir: str = "./klamm-data"
    num_partitions: int = Field(1, ge=1)
    default_replication_factor: int = Field(1, ge=1)
    auto_create_topics_enable: bool = True
    socket_request_max_bytes: int = Field(100 * 1024 * 1024, ge=1024)
    # Bytes all connections' large request frames may hold at once (Kafka's name; its
    # default is -1, unbounded: ours bounds memory); -1 for no bound.
    queued_max_request_bytes: int = Field(100 * 1024 * 1024, ge=-1)
    # A request frame must arrive whole within this time of its first byte (Klamm's own).
    request_receive_timeout_ms: int = Field(30_000, ge=100)
    message_max_bytes: int = Field(1024 * 1024 + 12, ge=0)
    log_segment_bytes: int = Field(1024**3, ge=1024)
    log_roll_ms: int = Field(7 * DAY_MS, ge=1)
    log_index_size_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    log_index_interval_bytes: int = Field(4096, ge=0)
    log_retention_ms: int = Field(7 * DAY_MS, ge=-1)
    log_retention_bytes: int = Field(-1, ge=-1)
    log_retention_check_interval_ms: int = Field(300_000, ge=1)
    log_cleanup_policy: CleanupPolicy = "delete"
    log_cleaner_delete_retention_ms: int = Field(DAY_MS, ge=0)
    log_segment_delete_delay_ms: int = Field(60_000, ge=0)
    log_flush_interval_messages: int = Field(NEVER, ge=1)
    log_flush_interval_ms: int = Field(NEVER, ge=0)
    log_flush_scheduler_interval_ms: int = Field(1000, ge=1)
    log_message_timestamp_type: TimestampType = "CreateTime"
    log_message_timestamp_difference_max_ms: int = Field(NEVER, ge=0)
    min_insync_replicas: int = Field(1, ge=1)
    unclean_leader_election_enable: bool = False
    shutdown_timeout_ms: int = Field(30_000, ge=0)
    # cluster: the coordination service (unset: an embedded one, as `klamm standalone` runs)
    zookeeper_connect: str | None = None
    zookeeper_session_timeout_ms: int = Field(18_000, ge=100)
    replica_lag_time_max_ms: int = Field(30_000, ge=1)
    replica_fetch_max_bytes: int = Field(1024 * 1024, ge=1024)
    replica_fetch_wait_max_ms: int = Field(500, ge=0)
    replica_fetch_min_bytes: int = Field(1, ge=1)
    replica_fetch_backoff_ms: int = Field(1000, ge=0)
    replica_socket_timeout_ms: int = Field(30_000, ge=1)
    controller_socket_timeout_ms: int = Field(30_000, ge=1)
    controller_retry_backoff_ms: int = Field(100, ge=1)
    controlled_shutdown_enable: bool = True
    controlled_shutdown_max_retries: int = Field(3, ge=0)
    controlled_shutdown_retry_backoff_ms: int = Field(5000, ge=0)
    auto_leader_rebalance_enable: bool = True
    leader_imbalance_check_interval_seconds: float = Field(300, gt=0)
    leader_imbalance_per_broker_percentage: int = Field(10, ge=0, le=100)
    delete_topic_enable: bool = True
    sendfile_enable: bool = True
    # Smaller fetch responses are read and sent with the reply head in one write: for a few KB
    # the syscalls around sendfile cost more latency than the copy.
    sendfile_min_bytes: int = Field(16384, ge=0)
    metrics_port: int | None = Field(None, ge=0, le=65535)

    @field_validator("queued_max_request_bytes")
    @classmethod
    def _bounded_or_off(cls, v: int) -> int:
        if 0 <= v < 1024:
            raise ValueError("must be -1 (no bound) or at least 1024 bytes")
        return v

    @classmethod
    def build(cls, values: Mapping[str, Any] | None = None, /, **kwargs: Any) -> BrokerConfig:
        """As KlammConfig.build, also taking Kafka's listeners and log.dirs (kafka_aliases)."""
        merged: dict[str, Any] = dict(values or {})
        merged.update(kwargs)
        return super().build(kafka_aliases(merged))

    def topic_defaults(self) -> TopicConfig:
        return TopicConfig.build(
            segment_bytes=self.log_segment_bytes,
            segment_ms=self.log_roll_ms,
            segment_index_bytes=self.log_index_size_max_bytes,
            index_interval_bytes=self.log_index_interval_bytes,
            retention_ms=self.log_retention_ms,
            retention_bytes=self.log_retention_bytes,
            cleanup_policy=self.log_cleanup_policy,
            delete_retention_ms=self.log_cleaner_delete_retention_ms,
            file_delete_delay_ms=self.log_segment_delete_delay_ms,
            flush_messages=self.log_flush_interval_messages,
            flush_ms=self.log_flush_interval_ms,
            max_message_bytes=self.message_max_bytes,
            message_timestamp_type=self.log_message_timestamp_type,
            message_timestamp_difference_max_ms=self.log_message_timestamp_difference_max_ms,
            min_insync_replicas=self.min_insync_replicas,
            unclean_leader_election_enable=self.unclean_leader_election_enable,
        )


def kafka_aliases(values: Mapping[str, Any]) -> dict[str, Any]:
    """Kafka's ``listeners`` / ``advertised.listeners`` (``PLAINTEXT://host:port``) and
    ``log.dirs`` as the settings they stand for here: ``host``/``port``,
    ``advertised.host``/``advertised.port`` and ``log.dir``. What cannot work yet is refused
    naming the key: another scheme than PLAINTEXT (no TLS or SASL yet), more than one
    listener (one port serves clients and brokers), more than one log dir."""
    out = dict(values)
    for key, host_key, port_key in (("listeners", "host", "port"),
                                    ("advertised.listeners", "advertised.host",
                                     "advertised.port")):
        if key not in out:
            continue
        raw = str(out.pop(key)).strip()
        taken = [k for k in (host_key, port_key, host_key.replace(".", "_"),
                             port_key.replace(".", "_")) if k in out]
        if taken:
            raise ConfigError(f"{key} and {taken[0]} both given; set the address once "
                              f"(listeners=PLAINTEXT://HOST:PORT, or --listen HOST:PORT)")
        out[host_key], out[port_key] = _listener(key, raw)
    if "log.dirs" in out or "log_dirs" in out:
        raw = str(out.pop("log.dirs", None) or out.pop("log_dirs", "")).strip()
        dirs = [d.strip() for d in raw.split(",") if d.strip()]
        if len(dirs) != 1:
            raise ConfigError(f"log.dirs={raw!r}: give exactly one directory (several log "
                              f"dirs, spread across disks, are not supported yet)")
        if "log.dir" in out or "log_dir" in out:
            raise ConfigError("log.dirs and log.dir both given; set one of them")
        out["log.dir"] = dirs[0]
    return out


def _listener(key: str, raw: str) -> tuple[str, int]:
    listeners = [item.strip() for item in raw.split(",") if item.strip()]
    if len(listeners) != 1:
        raise ConfigError(f"{key}={raw!r}: give exactly one listener; one port serves "
                          f"clients and other brokers (several listeners are not supported "
                          f"yet)")
    scheme, sep, address = listeners[0].partition("://")
    if not sep:
        raise ConfigError(f"{key}={raw!r} must look like PLAINTEXT://HOST:PORT")
    if scheme.upper() != "PLAINTEXT":
        raise ConfigError(f"{key}={raw!r}: only PLAINTEXT listeners are supported (no TLS or "
                          f"SASL yet)")
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit():
        raise ConfigError(f"{key}={raw!r} must look like PLAINTEXT://HOST:PORT")
    host = host.strip("[]")  # an IPv6 address in brackets
    return host or "0.0.0.0", int(port)  # Kafka: an empty host binds every interface


def load_properties(path: str) -> dict[str, str]:
    """Read a Kafka-style ``key=value`` properties file (``#`` comments, blank lines)."""
    out: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.strip()
                if not line or line.startswith(("#", "!")):
                    continue
                if "=" not in line:
                    raise ConfigError(f"{path}:{lineno}: expected key=value, got {line!r}")
                key, value = line.split("=", 1)
                out[key.strip()] = value.strip()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    return out
