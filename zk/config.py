"""Configuration of the coordination service (``ZkConfig.build({...})`` accepts dotted names)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from klamm.protocol.config import KlammConfig


class ZkConfig(KlammConfig):
    """Session timeouts a client asks for are clamped to [min, max]; every write is fsynced
    before it is acknowledged (there is no switch to turn that off)."""

    host: str = "127.0.0.1"
    port: int = Field(2181, ge=0, le=65535)
    data_dir: str = "./klamm-zk-data"
    min_session_timeout_ms: int = Field(200, ge=10)
    max_session_timeout_ms: int = Field(60000, ge=10)
    max_node_bytes: int = Field(1024 * 1024, ge=1)
    max_request_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    snapshot_interval_txns: int = Field(10000, ge=1)
    log_roll_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    session_check_interval_ms: int = Field(50, ge=1)

    @model_validator(mode="after")
    def _timeouts_ordered(self) -> Self:
        if self.min_session_timeout_ms > self.max_session_timeout_ms:
            raise ValueError("min.session.timeout.ms must not exceed max.session.timeout.ms")
        return self
