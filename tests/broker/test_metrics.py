"""Broker metrics in Prometheus format over HTTP."""

from __future__ import annotations

from klamm.client import Admin, NewTopic, Producer
from tests.support.scrape import http_get


async def test_metrics_endpoint_counts_requests_and_bytes(broker_factory) -> None:
    broker = await broker_factory(metrics_port=0)
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        await admin.create_topics([NewTopic("m", 1)])
    async with Producer(bootstrap_servers=broker.bootstrap) as producer:
        for _ in range(5):
            await producer.send_and_wait("m", b"x" * 100)
    status, body = await http_get(broker.metrics_port, "/metrics")
    assert status.endswith("200 OK")
    assert 'klamm_broker_requests_total{api="PRODUCE"} 5.0' in body
    assert "klamm_broker_messages_in_total 5.0" in body
    assert "klamm_broker_under_replicated_partitions 0.0" in body
    status, _ = await http_get(broker.metrics_port, "/nope")
    assert status.endswith("404 Not Found")
