"""Helpers for storage tests: batches, configs, an injectable clock, reading regions back."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from klamm.broker.config import TopicConfig
from klamm.broker.log import FetchData, PartitionLog
from klamm.protocol.records import BatchHeader, Record, build_batch, decode_records, validate_batch

T0 = 1_700_000_000_000  # ms; a fixed "now" so timestamps in tests are exact
DAY_MS = 24 * 60 * 60 * 1000


class FakeClock:
    """A settable wall clock in seconds, as ``time.time`` returns it."""

    def __init__(self, ms: int = T0) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000

    def advance(self, ms: int) -> None:
        self.ms += ms


def topic_config(**values: Any) -> TopicConfig:
    return TopicConfig.build({k.replace("_", "."): v for k, v in values.items()})


def batch(n: int = 3, ts: int = T0, *, value_size: int = 20, keys: list[bytes | None] | None
          = None, values: list[bytes | None] | None = None) -> bytes:
    """A producer batch of ``n`` records (base offset 0, as producers send it)."""
    recs = []
    for i in range(n):
        key = keys[i] if keys is not None else b"k%d" % i
        value = values[i] if values is not None else bytes([65 + i % 26]) * value_size
        recs.append([i, 0, key, value, []])
    return build_batch(recs, ts, ts)


def fetched_bytes(data: FetchData) -> bytes:
    """Read the regions back (and close their fds, as the server would)."""
    out = b"".join(os.pread(r.fd, r.size, r.position) for r in data.regions)
    for r in data.regions:
        os.close(r.fd)
    return out


def headers_of(buf: bytes) -> list[BatchHeader]:
    """Every batch in ``buf``, each CRC-checked; fails on a partial batch."""
    out = []
    pos = 0
    while pos < len(buf):
        h = validate_batch(buf, pos)
        out.append(h)
        pos += h.size
    return out


def records_of(buf: bytes) -> list[Record]:
    out: list[Record] = []
    pos = 0
    while pos < len(buf):
        h = validate_batch(buf, pos)
        out.extend(decode_records(buf, pos, h))
        pos += h.size
    return out


def segment_files(path: Path | str, suffix: str = ".log") -> list[str]:
    return sorted(f for f in os.listdir(path) if f.endswith(suffix))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def open_log(tmp_path: Path, clock: FakeClock) -> Iterator[Callable[..., PartitionLog]]:
    """``open_log(**topic_config)`` opens ``<tmp>/t-0``; every opened log is closed after."""
    opened: list[PartitionLog] = []

    def factory(config: TopicConfig | None = None, *, clean: bool = True,
                recovery_point: int = 0, **values: Any) -> PartitionLog:
        cfg = config if config is not None else topic_config(**values)
        plog = PartitionLog("t", 0, str(tmp_path / "t-0"), cfg, clean=clean,
                            recovery_point=recovery_point, clock=clock)
        opened.append(plog)
        return plog

    yield factory
    for plog in opened:
        plog.close()
