"""Fixtures for the coordination service: in-process servers on port 0, client factories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from klamm.zk.client import ZkClient
from klamm.zk.server import ZkServer

ClientFactory = Callable[..., Coroutine[Any, Any, ZkClient]]


@pytest.fixture
async def zk_server(tmp_path: Path) -> AsyncIterator[ZkServer]:
    server = ZkServer({"port": 0, "data.dir": str(tmp_path / "zk"),
                       "min.session.timeout.ms": 100, "session.check.interval.ms": 20})
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def zk(zk_server: ZkServer) -> AsyncIterator[ClientFactory]:
    """``await zk(chroot=None, session_timeout_ms=1000)`` -> started client, closed at teardown."""
    clients: list[ZkClient] = []

    async def factory(chroot: str | None = None, session_timeout_ms: int = 1000,
                      hosts: str | None = None) -> ZkClient:
        client = ZkClient(hosts or f"127.0.0.1:{zk_server.port}",
                          session_timeout_ms=session_timeout_ms, chroot=chroot)
        await client.start()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()
