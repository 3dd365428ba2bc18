"""METADATA: brokers, and for each topic its partitions' leader, epoch, replicas and ISR."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from klamm.protocol.errors import ErrorCode
from klamm.protocol.frame import Request

from ..connection import HandlerResult, Reply

if TYPE_CHECKING:
    from ..server import BrokerServer


def handle_metadata(server: "BrokerServer", request: Request) -> HandlerResult:
    body = request.body
    names = body.get("topics")
    auto_create = bool(body.get("allow_auto_topic_creation", False))
    store = server.topics
    if names is None:
        names = sorted(store.topics)
    topics = []
    for name in names:
        if not isinstance(name, str):
            raise TypeError("topic names must be strings")
        if name not in store.topics and auto_create and server.config.auto_create_topics_enable:
            code, _ = server.create_topic(name, server.config.num_partitions,
                                          server.config.default_replication_factor, {})
            if code not in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS):
                topics.append({"topic": name, "error_code": int(code), "is_internal": False,
                               "partitions": []})
                continue
        if name not in store.topics:
            topics.append({"topic": name, "error_code": int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                           "is_internal": False, "partitions": []})
            continue
        topics.append(_describe(server, name))
    cfg = server.config
    broker = {"node_id": cfg.broker_id, "host": cfg.advertised_host or cfg.host,
              "port": cfg.advertised_port or server.port, "rack": cfg.broker_rack}
    return Reply({"cluster_id": server.cluster_id, "controller_id": cfg.broker_id,
                  "brokers": [broker], "topics": topics})


def _describe(server: "BrokerServer", name: str) -> dict[str, Any]:
    parts = []
    for p in server.replicas.topic_partitions(name):
        parts.append({"partition": p.index, "error_code": 0, "leader": p.leader_id,
                      "leader_epoch": p.leader_epoch, "replicas": list(p.replicas),
                      "isr": list(p.isr), "offline_replicas": []})
    return {"topic": name, "error_code": 0, "is_internal": name.startswith("__"),
            "partitions": parts}
