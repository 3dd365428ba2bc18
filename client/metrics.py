"""Prometheus export of producer and consumer counters.

Nothing is registered unless asked: a library must not touch the application's registry on
its own. ``expose(client)`` adds a client to one collector that reads its ``metrics()`` at
scrape time, so sending and polling pay nothing for it; a stopped or garbage-collected client
simply disappears from the output. Serve the registry the usual way, e.g.
``prometheus_client.start_http_server(9401)``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from .consumer import Consumer
from .producer import Producer


class ClientCollector(Collector):
    """Yields the metrics of every exposed Producer and Consumer, labelled by client_id."""

    def __init__(self) -> None:
        self._clients: weakref.WeakSet[Producer | Consumer] = weakref.WeakSet()

    def add(self, client: Producer | Consumer) -> None:
        self._clients.add(client)

    def collect(self) -> Iterator[Metric]:
        sent = CounterMetricFamily("klamm_producer_records_sent",
                                   "Records the brokers acknowledged", labels=["client_id"])
        retried = CounterMetricFamily("klamm_producer_record_retries",
                                      "Records sent again after a retriable error",
                                      labels=["client_id"])
        failed = CounterMetricFamily("klamm_producer_record_errors",
                                     "Records whose delivery failed", labels=["client_id"])
        requests = CounterMetricFamily("klamm_producer_requests", "Produce requests sent",
                                       labels=["client_id"])
        splits = CounterMetricFamily("klamm_producer_batch_splits",
                                     "Batches split in two after MESSAGE_TOO_LARGE",
                                     labels=["client_id"])
        buffered = GaugeMetricFamily("klamm_producer_buffered_bytes",
                                     "Bytes waiting in buffer.memory", labels=["client_id"])
        consumed = CounterMetricFamily("klamm_consumer_records_consumed",
                                       "Records returned to the application",
                                       labels=["client_id"])
        fetches = CounterMetricFamily("klamm_consumer_fetch_requests", "Fetch requests sent",
                                      labels=["client_id"])
        prefetched = GaugeMetricFamily("klamm_consumer_buffered_bytes",
                                       "Fetched bytes not yet returned to the application",
                                       labels=["client_id"])
        lag = GaugeMetricFamily("klamm_consumer_lag",
                                "Records below the high watermark not yet returned",
                                labels=["client_id", "topic", "partition"])
        for client in list(self._clients):
            cid = client.config.client_id
            if isinstance(client, Producer):
                m = client.metrics()
                sent.add_metric([cid], m["record_send_total"])
                retried.add_metric([cid], m["record_retry_total"])
                failed.add_metric([cid], m["record_error_total"])
                requests.add_metric([cid], m["request_total"])
                splits.add_metric([cid], m["batch_split_total"])
                buffered.add_metric([cid], m["buffered_bytes"])
            else:
                c = client.metrics()
                consumed.add_metric([cid], c["records_consumed"])
                fetches.add_metric([cid], c["fetch_requests"])
                prefetched.add_metric([cid], c["buffered_bytes"])
                for tp, value in c["lag"].items():
                    if value is not None:
                        lag.add_metric([cid, tp.topic, str(tp.partition)], value)
        yield from (sent, retried, failed, requests, splits, buffered, consumed, fetches,
                    prefetched, lag)


_collectors: weakref.WeakKeyDictionary[CollectorRegistry, ClientCollector] = (
    weakref.WeakKeyDictionary())


def expose(client: Producer | Consumer, registry: CollectorRegistry = REGISTRY) -> None:
    """Export ``client``'s metrics through ``registry`` (the default one unless given)."""
    collector = _collectors.get(registry)
    if collector is None:
        collector = _collectors[registry] = ClientCollector()
        registry.register(collector)
    collector.add(client)
