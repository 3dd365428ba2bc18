"""METADATA: live brokers, the controller, and per topic its partitions' leader, epoch,
replicas and ISR, all from the metadata cache the controller feeds (so every broker answers
alike). A partition whose leader is not live reports LEADER_NOT_AVAILABLE with leader -1.
Naming a missing topic with ``allow_auto_topic_creation`` creates it when
``auto.create.topics.enable`` is on; it reports LEADER_NOT_AVAILABLE until it has leaders.
One request auto-creates at most MAX_AUTO_CREATE topics and names at most
``fields.MAX_TOPICS`` (each answered once however often it is named). A broker whose log dir
is offline creates nothing (STORAGE_ERROR naming the dir): it could
host none of the replicas, and in standalone mode its coordination data is on that disk too.
DESCRIBE_CLUSTER answers from the same cache: the controller and its epoch, live brokers, and
brokers that hold replicas but are gone (with the endpoint last seen, if any).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from klamm.protocol.cluster_api import NO_LEADER
from klamm.protocol.errors import ErrorCode
from klamm.protocol.frame import Request

from . import fields
from ..reply import HandlerResult, Reply

if TYPE_CHECKING:
    from ..config import BrokerConfig
    from ..log.dir_health import LogDirHealth
    from ..metadata_cache import MetadataCache
    from ..topic_admin import TopicAdmin

log = logging.getLogger(__name__)

# Topics one METADATA request may auto-create (the rest are answered "ask again").
MAX_AUTO_CREATE = 32


class MetadataApi:
    def __init__(self, cache: "MetadataCache", admin: "TopicAdmin",
                 config: "BrokerConfig", log_dir: "LogDirHealth") -> None:
        self.cache = cache
        self.admin = admin
        self.config = config
        self.log_dir = log_dir

    def handle(self, request: Request) -> HandlerResult:
        body = fields.body_map(request.body)
        names: list[str] | None = None
        if body.get("topics") is not None:  # None: every topic
            names = list(dict.fromkeys(fields.strings(body, "topics", fields.MAX_TOPICS)))
        auto_create = fields.flag(body, "allow_auto_topic_creation") and \
            self.config.auto_create_topics_enable
        missing = [] if names is None else [n for n in names if not self.cache.has_topic(n)]
        if auto_create and names is not None and missing:
            if self.log_dir.offline:
                refused = (ErrorCode.STORAGE_ERROR, f"{self.log_dir.offline_error()}; the "
                           f"topic was not created")
                return Reply(self._answer(names, dict.fromkeys(missing, refused)))
            later: tuple[ErrorCode, str | None] = (
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                f"not created yet: one metadata request auto-creates at most "
                f"{MAX_AUTO_CREATE} topics; ask again")
            deferred = dict.fromkeys(missing[MAX_AUTO_CREATE:], later)
            return self._create_then_answer(names, missing[:MAX_AUTO_CREATE], deferred)
        return Reply(self._answer(names, {}))

    def describe_cluster(self, request: Request) -> HandlerResult:
        cache = self.cache
        brokers: list[dict[str, Any]] = [
            {"node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack, "live": True}
            for _, b in sorted(cache.brokers.items())]
        for node_id, seen in cache.dead_brokers().items():
            brokers.append({"node_id": node_id, "host": seen.host if seen else "",
                            "port": seen.port if seen else -1,
                            "rack": seen.rack if seen else None, "live": False})
        brokers.sort(key=lambda b: b["node_id"])
        return Reply({"error_code": 0, "cluster_id": cache.cluster_id,
                      "controller_id": cache.controller_id,
                      "controller_epoch": cache.controller_epoch, "brokers": brokers})

    async def _create_then_answer(self, names: list[str], missing: list[str],
                                  deferred: dict[str, tuple[ErrorCode, str | None]]) -> Reply:
        created: dict[str, tuple[ErrorCode, str | None]] = dict(deferred)
        for name in missing:
            code, message = await self.admin.create(
                name, self.config.num_partitions, self.config.default_replication_factor, {},
                user=False, timeout_ms=0)
            if code is ErrorCode.NONE:
                log.info("auto-created topic %s (auto.create.topics.enable=true; a METADATA "
                         "request named it)", name)
                code, message = ErrorCode.LEADER_NOT_AVAILABLE, "the topic was just created"
            elif code is ErrorCode.TOPIC_ALREADY_EXISTS:
                code, message = ErrorCode.LEADER_NOT_AVAILABLE, "the topic is being created"
            created[name] = (code, message)
        return Reply(self._answer(names, created))

    def _answer(self, names: list[str] | None,
                errors: dict[str, tuple[ErrorCode, str | None]]) -> dict[str, Any]:
        cache = self.cache
        topics = []
        for name in (sorted(cache.topics) if names is None else names):
            if name in errors and not cache.has_topic(name):
                code, message = errors[name]
                topics.append({"topic": name, "error_code": int(code), "error_message": message,
                               "is_internal": name.startswith("__"), "partitions": []})
            elif not cache.has_topic(name):
                topics.append({"topic": name,
                               "error_code": int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                               "is_internal": False, "partitions": []})
            else:
                topics.append(self._describe(name))
        brokers = [{"node_id": b.node_id, "host": b.host, "port": b.port, "rack": b.rack}
                   for _, b in sorted(cache.brokers.items())]
        return {"cluster_id": cache.cluster_id, "controller_id": cache.controller_id,
                "brokers": brokers, "topics": topics}

    def _describe(self, name: str) -> dict[str, Any]:
        live = self.cache.brokers
        parts = []
        for index, p in sorted(self.cache.topics[name].items()):
            led = p.leader in live
            parts.append({"partition": index,
                          "error_code": 0 if led else int(ErrorCode.LEADER_NOT_AVAILABLE),
                          "leader": p.leader if led else NO_LEADER,
                          "leader_epoch": p.leader_epoch, "replicas": list(p.replicas),
                          "isr": list(p.isr),
                          "offline_replicas": [b for b in p.replicas if b not in live]})
        return {"topic": name, "error_code": 0, "is_internal": name.startswith("__"),
                "partitions": parts}
