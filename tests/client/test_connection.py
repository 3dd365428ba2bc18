"""BrokerConnection: pipelined requests, timeouts and cancellation against a real broker."""

from __future__ import annotations

import asyncio

import pytest

from klamm.broker.server import BrokerServer
from klamm.client.connection import BrokerConnection
from klamm.client.errors import KlammConnectionError, KlammTimeoutError
from klamm.protocol.api import ApiKey
from tests.support.proxy import FaultProxy


async def _open(address: str) -> BrokerConnection:
    """A connection that has had one answer, so a proxy in between has its pipe up."""
    host, port = address.rsplit(":", 1)
    conn = await BrokerConnection.open(host, int(port))
    await conn.request(ApiKey.API_VERSIONS, {})
    return conn


async def test_pipelined_requests_are_answered_in_order(broker: BrokerServer) -> None:
    conn = await _open(broker.bootstrap)
    try:
        answers = await asyncio.gather(*(conn.request(ApiKey.API_VERSIONS, {})
                                         for _ in range(50)))
        assert len(answers) == 50 and all(a.body["error_code"] == 0 for a in answers)
        assert [a.correlation_id for a in answers] == sorted(a.correlation_id for a in answers)
    finally:
        conn.close()


async def test_a_cancelled_request_keeps_later_answers_paired(
        proxied_broker: tuple[BrokerServer, FaultProxy]) -> None:
    _, proxy = proxied_broker
    conn = await _open(proxy.address)
    try:
        proxy.stall("down")
        first = asyncio.ensure_future(conn.request(ApiKey.API_VERSIONS, {}))
        second = asyncio.ensure_future(conn.request(ApiKey.METADATA, {"topics": []}))
        await asyncio.sleep(0)  # both are written
        first.cancel()
        proxy.resume()
        answer = await asyncio.wait_for(second, timeout=10)
        assert "brokers" in answer.body  # the metadata answer, not the api versions one
        assert first.cancelled() and conn.connected
    finally:
        conn.close()


async def test_no_answer_within_the_timeout_fails_every_request_and_closes(
        proxied_broker: tuple[BrokerServer, FaultProxy]) -> None:
    _, proxy = proxied_broker
    conn = await _open(proxy.address)
    try:
        proxy.drop("down")
        slow = asyncio.ensure_future(conn.request(ApiKey.API_VERSIONS, {}, timeout=30))
        with pytest.raises(KlammTimeoutError, match="request.timeout.ms"):
            await conn.request(ApiKey.API_VERSIONS, {}, timeout=0.2)
        with pytest.raises(KlammTimeoutError):
            await asyncio.wait_for(slow, timeout=5)  # failed with it: its answer is lost too
        assert not conn.connected
        with pytest.raises(KlammTimeoutError):
            await conn.request(ApiKey.API_VERSIONS, {})
    finally:
        conn.close()


async def test_a_reset_connection_fails_requests_in_flight(
        proxied_broker: tuple[BrokerServer, FaultProxy]) -> None:
    _, proxy = proxied_broker
    conn = await _open(proxy.address)
    proxy.stall("down")
    pending = asyncio.ensure_future(conn.request(ApiKey.API_VERSIONS, {}))
    await asyncio.sleep(0)
    proxy.cut()
    with pytest.raises(KlammConnectionError, match="lost"):
        await asyncio.wait_for(pending, timeout=5)
    conn.close()
