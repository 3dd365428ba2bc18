"""Client metrics exported to Prometheus read the live counters of real clients."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from klamm.broker.server import BrokerServer
from klamm.client import Admin, Consumer, NewTopic, Producer, TopicPartition
from klamm.client.metrics import expose


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_producer_and_consumer_counters_reach_the_registry(broker: BrokerServer) -> None:
    async with Admin(bootstrap_servers=broker.bootstrap) as admin:
        await admin.create_topics([NewTopic("m", 2)])
    registry = CollectorRegistry()
    tp = TopicPartition("m", 1)
    async with Producer(bootstrap_servers=broker.bootstrap, client_id="p1") as producer, \
            Consumer(bootstrap_servers=broker.bootstrap, client_id="c1") as consumer:
        expose(producer, registry)
        expose(consumer, registry)
        assert sample(registry, "klamm_producer_records_sent_total", client_id="p1") == 0
        for i in range(30):
            await producer.send("m", b"%d" % i, partition=1)
        await producer.flush()
        assert sample(registry, "klamm_producer_records_sent_total", client_id="p1") == 30
        assert sample(registry, "klamm_producer_record_errors_total", client_id="p1") == 0
        assert sample(registry, "klamm_producer_requests_total", client_id="p1") >= 1

        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got = 0
        while got < 10:
            got += sum(map(len, (await consumer.getmany(timeout_ms=5000,
                                                        max_records=10 - got)).values()))
        assert sample(registry, "klamm_consumer_records_consumed_total", client_id="c1") == 10
        assert sample(registry, "klamm_consumer_lag", client_id="c1", topic="m",
                      partition="1") == 20
        assert sample(registry, "klamm_consumer_fetch_requests_total", client_id="c1") >= 1
        assert b"klamm_producer_buffered_bytes" in generate_latest(registry)
