"""Cluster scenarios: real processes (one coordination service, three brokers) per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cluster import Cluster


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    started = Cluster(tmp_path).start()
    try:
        yield started
    finally:
        started.stop()
