"""Broker metrics in Prometheus' exposition format, one registry per broker.

A registry per instance (not the global default) lets several brokers run in one process,
as tests and ``klamm standalone`` do.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest


class BrokerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("klamm_broker_requests", "Requests handled, by api",
                                ["api"], registry=r)
        self.failed_produce = Counter("klamm_broker_failed_produce_requests",
                                      "Produce partition-requests answered with an error",
                                      registry=r)
        self.failed_fetch = Counter("klamm_broker_failed_fetch_requests",
                                    "Fetch partition-requests answered with an error",
                                    registry=r)
        self.bytes_in = Counter("klamm_broker_bytes_in", "Record batch bytes appended by "
                                "producers", registry=r)
        self.bytes_out = Counter("klamm_broker_bytes_out", "Record batch bytes sent to fetchers",
                                 registry=r)
        self.messages_in = Counter("klamm_broker_messages_in", "Records appended", registry=r)
        self.sendfile_bytes = Counter("klamm_broker_sendfile_bytes",
                                      "Bytes sent to sockets by sendfile (zero copy)", registry=r)
        self.copied_bytes = Counter("klamm_broker_fetch_copied_bytes",
                                    "Fetch bytes read and written by copy (small responses, or "
                                    "sendfile off)", registry=r)
        self.connections = Gauge("klamm_broker_connections", "Open client connections",
                                 registry=r)
        self.connections_rejected = Counter(
            "klamm_broker_connections_closed_for_bad_input",
            "Connections closed because the peer sent an invalid frame", registry=r)
        self.under_replicated = Gauge("klamm_broker_under_replicated_partitions",
                                      "Led partitions whose ISR is smaller than the replica set",
                                      registry=r)
        self.partitions = Gauge("klamm_broker_partitions", "Partition replicas on this broker",
                                registry=r)
        self.leader_count = Gauge("klamm_broker_leader_count", "Partitions this broker leads",
                                  registry=r)
        self.under_min_isr = Gauge("klamm_broker_under_min_isr_partitions",
                                   "Led partitions whose ISR is smaller than min.insync.replicas",
                                   registry=r)
        self.isr_shrinks = Counter("klamm_broker_isr_shrinks", "ISR shrinks of led partitions",
                                   registry=r)
        self.isr_expands = Counter("klamm_broker_isr_expands", "ISR expansions of led partitions",
                                   registry=r)
        self.replication_bytes_in = Counter(
            "klamm_broker_replication_bytes_in", "Record batch bytes this broker fetched as a "
            "follower", registry=r)
        self.replication_bytes_out = Counter(
            "klamm_broker_replication_bytes_out", "Record batch bytes followers fetched from "
            "this broker", registry=r)
        self.active_controller = Gauge("klamm_controller_active",
                                       "1 while this broker is the controller", registry=r)
        self.offline_partitions = Gauge("klamm_controller_offline_partitions",
                                        "Partitions without a live leader (controller only)",
                                        registry=r)
        self.controller_events = Counter("klamm_controller_events",
                                         "Events the controller processed, by kind", ["event"],
                                         registry=r)
        self.request_memory_bytes = Gauge(
            "klamm_broker_request_memory_bytes", "Bytes reserved by large request frames "
            "being read (bounded by queued.max.request.bytes)", registry=r)
        self.request_memory_waiting = Gauge(
            "klamm_broker_request_memory_waiting_connections", "Connections not read from "
            "until queued.max.request.bytes has room for their next frame", registry=r)
        self.stalled_requests = Counter(
            "klamm_broker_stalled_requests", "Connections closed because a request frame did "
            "not arrive whole within request.receive.timeout.ms", registry=r)
        self.unclean_elections = Counter("klamm_controller_unclean_leader_elections",
                                         "Leaders elected from outside the ISR", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample (for tests and the CLI)."""
        v = self.registry.get_sample_value(name, labels or None)
        return 0.0 if v is None else v
