"""Topic administration: CREATE_TOPICS, DELETE_TOPICS, DESCRIBE_CONFIGS, ALTER_CONFIGS.

The work is ``TopicAdmin``'s (validation, coordination writes, waiting for the controller);
these handlers decode, dispatch and encode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from klamm.protocol.config import ConfigError
from klamm.protocol.errors import ErrorCode, InvalidRequestError
from klamm.protocol.frame import Request

from ..config import TopicConfig
from ..connection import Reply

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
        body = request.body
        validate_only = bool(body.get("validate_only", False))
        timeout_ms = int(body.get("timeout_ms", 30_000))
        results = []
        for t in body["topics"]:
            name = t["topic"]
            num = t.get("num_partitions", -1)
            rf = t.get("replication_factor", -1)
            raw = t.get("assignment")
            assignment = None
            if raw:
                assignment = {int(p): [int(b) for b in r] for p, r in dict(raw).items()}
            elif num in (None, -1):
                num = self.config.num_partitions
            if not raw and rf in (None, -1):
                rf = self.config.default_replication_factor
            configs = dict(t.get("configs") or {})
            code, message = await self.admin.create(
                name, int(num if num is not None else -1), int(rf if rf is not None else -1),
                configs, assignment, user=True, validate_only=validate_only,
                timeout_ms=timeout_ms)
            results.append({"topic": name, "error_code": int(code), "error_message": message})
        return Reply({"topics": results})

    async def delete_topics(self, request: Request) -> Reply:
        timeout_ms = int(request.body.get("timeout_ms", 30_000))
        results = []
        for name in request.body["topics"]:
            if not isinstance(name, str):
                raise InvalidRequestError("topic names must be strings")
            code, message = await self.admin.delete(name, timeout_ms)
            results.append({"topic": name, "error_code": int(code), "error_message": message})
        return Reply({"topics": results})

    async def describe_configs(self, request: Request) -> Reply:
        out = []
        for res in request.body["resources"]:
            rtype, name = res["type"], res["name"]
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
                if str(name) not in ("", str(self.config.broker_id)):
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
            elif not await self.admin.exists(name):
                entry.update(error_code=int(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                             error_message=f"topic {name!r} does not exist")
            else:
                try:
                    effective = await self.admin.alter(name, dict(res["configs"]),
                                                       validate_only)
                    if effective is not None:
                        self.apply_config(name, effective)
                except ConfigError as exc:
                    entry.update(error_code=int(ErrorCode.INVALID_CONFIG),
                                 error_message=str(exc))
            out.append(entry)
        return Reply({"resources": out})


def _config_entries(values: dict[str, Any], overrides: set[str],
                    override_source: str) -> list[dict[str, Any]]:
    return [{"name": k, "value": None if v is None else str(v),
             "source": override_source if k in overrides else "default", "read_only": False}
            for k, v in sorted(values.items())]
