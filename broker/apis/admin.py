"""Topic administration: CREATE_TOPICS, CREATE_PARTITIONS, DELETE_TOPICS, DESCRIBE_CONFIGS,
ALTER_CONFIGS, ALTER_PARTITION_REASSIGNMENTS, LIST_PARTITION_REASSIGNMENTS.

The work is ``TopicAdmin``'s (validation, coordination writes, waiting for the controller);
these handlers decode, dispatch and encode.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from klamm.protocol.config import ConfigError
from klamm.protocol.errors import ErrorCode, InvalidRequestError
from klamm.protocol.frame import Request

from . import fields
from ..config import TopicConfig
from ..reply import Reply

if TYPE_CHECKING:
    from ..config import BrokerConfig
    from ..topic_admin import TopicAdmin


class AdminApi:
    def __init__(self, admin: "TopicAdmin", config: "BrokerConfig",
                 explicit_keys: frozenset[str],
                 apply_config: Callable[[str, TopicConfig], None]) -> None:
        self.admin = admin
        self.config = config
        self.explicit_keys = explicit_keys
        self.apply_config = apply_config

    async def create_topics(self, request: Request) -> Reply:
        body = fields.body_map(request.body)
        validate_only = fields.flag(body, "validate_only")
        timeout_ms = fields.integer(body, "timeout_ms", 30_000)
        topics = fields.entries(body, "topics", fields.MAX_TOPICS)
        requested = [_creation(t, self.config) for t in topics]
        total = sum(len(a) if a is not None else max(num, 0) for _, num, _, a, _ in requested)
        if total > fields.MAX_NEW_PARTITIONS:
            raise InvalidRequestError(f"the request creates {total} partitions; at most "
                                      f"{fields.MAX_NEW_PARTITIONS} per request")
        results = []
        for name, num, rf, assignment, configs in requested:
            code, message = await self.admin.create(
                name, num, rf, configs, assignment, user=True, validate_only=validate_only,
                timeout_ms=timeout_ms)
            results.append({"topic": name, "error_code": int(code), "error_message": message})
        return Reply({"topics": results})

    async def create_partitions(self, request: Request) -> Reply:
        body = fields.body_map(request.body)
        validate_only = fields.flag(body, "validate_only")
        timeout_ms = fields.integer(body, "timeout_ms", 30_000)
        topics = fields.entries(body, "topics", fields.MAX_TOPICS)
        wanted = [(fields.text(t, "topic"), fields.integer(t, "count", low=0, high=1 << 31),
                   _new_replicas(t)) for t in topics]
        named: dict[str, int] = {}
        for name, _, _ in wanted:
            named[name] = named.get(name, 0) + 1
        results = []
        for name, count, assignment in wanted:
            message: str | None
            if named[name] > 1:  # as Kafka: which of them would win is undefined
                code, message = ErrorCode.INVALID_REQUEST, (
                    f"topic {name!r} is named more than once in the request")
            else:
                code, message = await self.admin.create_partitions(
                    name, count, assignment, validate_only=validate_only,
                    timeout_ms=timeout_ms)
            results.append({"topic": name, "error_code": int(code), "error_message": message})
        return Reply({"topics": results})

    async def alter_partition_reassignments(self, request: Request) -> Reply:
        body = fields.body_map(request.body)
        targets: dict[tuple[str, int], list[int] | None] = {}
        for t in fields.topic_partitions(body):
            for p in t["partitions"]:
                index = fields.integer(p, "partition", low=0)
                raw = p.get("replicas")
                if raw is not None and not (isinstance(raw, (list, tuple)) and
                                            len(raw) <= 1 << 15 and
                                            all(type(b) is int for b in raw)):
                    raise InvalidRequestError("field 'replicas' must be a list of broker ids "
                                              "(or null)")
                targets[t["topic"], index] = None if raw is None else list(raw)
        results = await self.admin.reassign_partitions(targets)
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for (topic, index), (code, message) in results.items():
            by_topic.setdefault(topic, []).append({"partition": index, "error_code": int(code),
                                                   "error_message": message})
        return Reply({"error_code": 0, "topics": [{"topic": t, "partitions": ps}
                                                  for t, ps in sorted(by_topic.items())]})

    async def list_partition_reassignments(self, request: Request) -> Reply:
        fields.body_map(request.body)
        by_topic: dict[str, list[dict[str, Any]]] = {}
        for (topic, index), target in sorted((await self.admin.reassignments()).items()):
            now = self.admin.metadata.partition(topic, index)
            by_topic.setdefault(topic, []).append({
                "partition": index, "target": target,
                "replicas": list(now.replicas) if now is not None else []})
        return Reply({"error_code": 0, "topics": [{"topic": t, "partitions": ps}
                                                  for t, ps in by_topic.items()]})

    async def delete_topics(self, request: Request) -> Reply:
        body = fields.body_map(request.body)
        timeout_ms = fields.integer(body, "timeout_ms", 30_000)
        results = []
        for name in dict.fromkeys(fields.strings(body, "topics", fields.MAX_TOPICS)):
            code, message = await self.admin.delete(name, timeout_ms)
            results.append({"topic": name, "error_code": int(code), "error_message": message})
        return Reply({"topics": results})

    async def describe_configs(self, request: Request) -> Reply:
        out = []
        wanted = _resources(fields.body_map(request.body))
        for rtype, name in dict.fromkeys((rtype, name) for rtype, name, _ in wanted):
            entry: dict[str, Any] = {"type": rtype, "name": name, "error_code": 0,
                                     "error_message": None, "configs": []}
            if rtype == "topic":
                if not await self.admin.exists(name):
                    entry.update(error_code=int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                                 error_message=f"topic {name!r} does not exist")
                else:
                    overrides = await self.admin.overrides(name)
                    try:
                        effective = TopicConfig.effective(self.config, overrides)
                    except ConfigError as exc:
                        entry.update(error_code=int(ErrorCode.INVALID_CONFIG),
                                     error_message=f"the stored config is invalid: {exc}")
                    else:
                        entry["configs"] = _config_entries(effective.as_dotted(),
                                                           set(overrides), "topic")
            elif rtype == "broker":
                if name not in ("", str(self.config.broker_id)):
                    entry.update(error_code=int(ErrorCode.INVALID_REQUEST),
                                 error_message=f"this is broker {self.config.broker_id}, "
                                               f"not {name}; ask that broker")
                else:
                    entry["configs"] = _config_entries(self.config.as_dotted(),
                                                       set(self.explicit_keys), "broker")
            else:
                entry.update(error_code=int(ErrorCode.INVALID_REQUEST),
                             error_message=f"unknown resource type {rtype!r}; use topic or "
                                           f"broker")
            out.append(entry)
        return Reply({"resources": out})

    async def alter_configs(self, request: Request) -> Reply:
        body = fields.body_map(request.body)
        validate_only = fields.flag(body, "validate_only")
        out = []
        wanted = _resources(body)
        seen: dict[tuple[str, str], int] = {}
        for rtype, name, _ in wanted:
            seen[rtype, name] = seen.get((rtype, name), 0) + 1
        for rtype, name, res in wanted:
            entry: dict[str, Any] = {"type": rtype, "name": name, "error_code": 0,
                                     "error_message": None}
            if seen[rtype, name] > 1:  # as Kafka: which of them would win is undefined
                entry.update(error_code=int(ErrorCode.INVALID_REQUEST),
                             error_message=f"{rtype} {name!r} is named more than once in "
                                           f"the request")
            elif rtype != "topic":
                entry.update(error_code=int(ErrorCode.INVALID_REQUEST),
                             error_message="only topic configs can be altered at runtime; "
                                           "broker configs come from the config file")
            elif not await self.admin.exists(name):
                entry.update(error_code=int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                             error_message=f"topic {name!r} does not exist")
            else:
                try:
                    effective = await self.admin.alter(name, fields.string_map(res, "configs"),
                                                       validate_only)
                    if effective is not None:
                        self.apply_config(name, effective)
                except ConfigError as exc:
                    entry.update(error_code=int(ErrorCode.INVALID_CONFIG),
                                 error_message=str(exc))
            out.append(entry)
        return Reply({"resources": out})


def _creation(t: Mapping[str, Any], config: "BrokerConfig"
              ) -> tuple[str, int, int, dict[int, list[int]] | None, dict[str, Any]]:
    """One CREATE_TOPICS entry as (name, partitions, replication factor, assignment,
    configs), with the broker's defaults for -1 or absent counts."""
    name = fields.text(t, "topic")
    limit = fields.MAX_NEW_PARTITIONS
    num = fields.integer(t, "num_partitions", -1, low=-1, high=limit) \
        if t.get("num_partitions") is not None else -1
    rf = fields.integer(t, "replication_factor", -1, low=-1, high=1 << 15) \
        if t.get("replication_factor") is not None else -1
    assignment = None
    raw = t.get("assignment")
    if raw:
        if not isinstance(raw, dict) or len(raw) > limit:
            raise InvalidRequestError(f"field 'assignment' must map at most {limit} "
                                      f"partitions to broker id lists")
        assignment = {}
        for p, replicas in raw.items():
            if type(p) is not int or not isinstance(replicas, (list, tuple)) or \
                    len(replicas) > 1 << 15 or any(type(b) is not int for b in replicas):
                raise InvalidRequestError("field 'assignment' must map partition numbers to "
                                          "lists of broker ids")
            assignment[p] = list(replicas)
    elif num == -1:
        num = config.num_partitions
    if not raw and rf == -1:
        rf = config.default_replication_factor
    return name, num, rf, assignment, fields.string_map(t, "configs")


def _new_replicas(t: Mapping[str, Any]) -> list[list[int]] | None:
    """A CREATE_PARTITIONS entry's ``assignment``: one broker id list per new partition, or
    None (absent or null) for the broker to place them."""
    raw = t.get("assignment")
    if raw is None:
        return None
    lists = fields.sequence(t, "assignment", fields.MAX_NEW_PARTITIONS)
    if not all(isinstance(r, (list, tuple)) and len(r) <= 1 << 15 and
               all(type(b) is int for b in r) for r in lists):
        raise InvalidRequestError("field 'assignment' must be a list of broker id lists, one "
                                  "per new partition")
    return [list(r) for r in lists]


def _resources(body: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    found = []
    for res in fields.entries(body, "resources", fields.MAX_RESOURCES):
        name = res.get("name")
        if isinstance(name, int) and type(name) is not bool:
            name = str(name)  # a broker id
        found.append((fields.text(res, "type"), fields.text({"name": name}, "name"), res))
    return found


def _config_entries(values: dict[str, Any], overrides: set[str],
                    override_source: str) -> list[dict[str, Any]]:
    return [{"name": k, "value": None if v is None else str(v),
             "source": override_source if k in overrides else "default", "read_only": False}
            for k, v in sorted(values.items())]
