"""Topic administration: CREATE_TOPICS, DELETE_TOPICS, DESCRIBE_CONFIGS, ALTER_CONFIGS."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from klamm.protocol.config import ConfigError
from klamm.protocol.errors import ErrorCode
from klamm.protocol.frame import Request

from ..config import TopicConfig
from ..connection import HandlerResult, Reply

if TYPE_CHECKING:
    from ..server import BrokerServer


def handle_create_topics(server: "BrokerServer", request: Request) -> HandlerResult:
    body = request.body
    validate_only = bool(body.get("validate_only", False))
    results = []
    for t in body["topics"]:
        name = t["topic"]
        num = t.get("num_partitions", -1)
        rf = t.get("replication_factor", -1)
        num = server.config.num_partitions if num in (None, -1) else int(num)
        rf = server.config.default_replication_factor if rf in (None, -1) else int(rf)
        configs = dict(t.get("configs") or {})
        code, message = server.create_topic(name, num, rf, configs, user=True,
                                            validate_only=validate_only)
        results.append({"topic": name, "error_code": int(code), "error_message": message})
    return Reply({"topics": results})


def handle_delete_topics(server: "BrokerServer", request: Request) -> HandlerResult:
    results = []
    for name in request.body["topics"]:
        if name not in server.topics.topics:
            results.append({"topic": name,
                            "error_code": int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                            "error_message": f"topic {name!r} does not exist"})
            continue
        server.delete_topic(name)
        results.append({"topic": name, "error_code": 0, "error_message": None})
    return Reply({"topics": results})


def _config_entries(values: dict[str, Any], overrides: set[str],
                    override_source: str) -> list[dict[str, Any]]:
    return [{"name": k, "value": None if v is None else str(v),
             "source": override_source if k in overrides else "default", "read_only": False}
            for k, v in sorted(values.items())]


def handle_describe_configs(server: "BrokerServer", request: Request) -> HandlerResult:
    out = []
    for res in request.body["resources"]:
        rtype, name = res["type"], res["name"]
        entry: dict[str, Any] = {"type": rtype, "name": name, "error_code": 0,
                                 "error_message": None, "configs": []}
        if rtype == "topic":
            record = server.topics.topics.get(name)
            if record is None:
                entry.update(error_code=int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                             error_message=f"topic {name!r} does not exist")
            else:
                effective = TopicConfig.effective(server.config, record.configs)
                entry["configs"] = _config_entries(effective.as_dotted(), set(record.configs),
                                                   "topic")
        elif rtype == "broker":
            if str(name) not in ("", str(server.config.broker_id)):
                entry.update(error_code=int(ErrorCode.INVALID_REQUEST),
                             error_message=f"this is broker {server.config.broker_id}, "
                                           f"not {name}")
            else:
                explicit = set(server.explicit_config_keys)
                entry["configs"] = _config_entries(server.config.as_dotted(), explicit,
                                                   "broker")
        else:
            entry.update(error_code=int(ErrorCode.INVALID_REQUEST),
                         error_message=f"unknown resource type {rtype!r}; use topic or broker")
        out.append(entry)
    return Reply({"resources": out})


def handle_alter_configs(server: "BrokerServer", request: Request) -> HandlerResult:
    body = request.body
    validate_only = bool(body.get("validate_only", False))
    out = []
    for res in body["resources"]:
        rtype, name = res["type"], res["name"]
        entry: dict[str, Any] = {"type": rtype, "name": name, "error_code": 0,
                                 "error_message": None}
        if rtype != "topic":
            entry.update(error_code=int(ErrorCode.INVALID_REQUEST),
                         error_message="only topic configs can be altered at runtime; "
                                       "broker configs come from the config file")
        elif name not in server.topics.topics:
            entry.update(error_code=int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                         error_message=f"topic {name!r} does not exist")
        else:
            try:
                server.alter_topic_config(name, dict(res["configs"]), validate_only)
            except ConfigError as exc:
                entry.update(error_code=int(ErrorCode.INVALID_CONFIG), error_message=str(exc))
        out.append(entry)
    return Reply({"resources": out})

