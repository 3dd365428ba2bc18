"""A standalone broker process per CLI test module (``broker_proc``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import BrokerProcess


@pytest.fixture(scope="module")
def broker_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(str(tmp_path_factory.mktemp("cli") / "data"))
    proc.start()
    yield proc
    proc.terminate()
