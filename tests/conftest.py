"""Fixtures shared by every test: uvloop, in-process brokers on port 0, broker processes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from klamm.broker.config import BrokerConfig
from klamm.broker.server import BrokerServer
from tests.support.proxy import FaultProxy

# Short intervals keep background tasks observable within a test's lifetime.
FAST_BROKER = {
    "host": "127.0.0.1",
    "port": 0,
    "log.retention.check.interval.ms": 200,
    "log.flush.scheduler.interval.ms": 50,
    "log.segment.delete.delay.ms": 0,
    "shutdown.timeout.ms": 5000,
    "controlled.shutdown.retry.backoff.ms": 100,
}


def pytest_asyncio_loop_factories(config: pytest.Config,
                                  item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """Tests run on uvloop, as the broker does in production (sendfile path included)."""
    return {"uvloop": uvloop.new_event_loop}


def make_broker_config(log_dir: Path | str, **overrides: Any) -> BrokerConfig:
    values: dict[str, Any] = dict(FAST_BROKER)
    values["log.dir"] = str(log_dir)
    values.update(overrides)
    return BrokerConfig.build(values)


@pytest.fixture
async def broker_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Start extra in-process brokers: ``await broker_factory(**config)``; stopped at teardown."""
    started: list[BrokerServer] = []

    async def factory(log_dir: Path | str | None = None, **overrides: Any) -> BrokerServer:
        server = BrokerServer(make_broker_config(
            log_dir or tmp_path / f"broker-{len(started)}", **overrides))
        await server.start()
        started.append(server)
        return server

    yield factory
    for server in started:
        await server.stop()


@pytest.fixture
async def proxied_broker(tmp_path: Path) -> AsyncIterator[tuple[BrokerServer, FaultProxy]]:
    """A broker that clients reach only through a FaultProxy (it advertises the proxy; its
    own controller reaches it through the proxy too, so the proxy is aimed at it as soon as
    its port is open)."""
    import asyncio

    proxy = await FaultProxy("127.0.0.1", 1).start()
    server = BrokerServer(make_broker_config(tmp_path / "proxied", advertised_port=proxy.port))
    starting = asyncio.ensure_future(server.start())
    listening = asyncio.ensure_future(server.listening.wait())
    await asyncio.wait({starting, listening}, return_when=asyncio.FIRST_COMPLETED)
    listening.cancel()
    if starting.done():
        starting.result()  # raises what failed before the port was open
    proxy.retarget("127.0.0.1", server.port)
    try:
        await starting
        yield server, proxy
    finally:
        await server.stop()
        await proxy.stop()


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[BrokerServer]:
    """A started single-node broker on 127.0.0.1:<ephemeral>; ``broker.bootstrap`` to connect."""
    server = BrokerServer(make_broker_config(tmp_path / "broker"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()

