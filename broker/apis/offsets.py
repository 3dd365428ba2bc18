"""LIST_OFFSETS: earliest, latest (the high watermark) or the first offset at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from klamm.protocol.api import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from klamm.protocol.frame import Request

from ..connection import HandlerResult, Reply
from ..errors import error_code_of

if TYPE_CHECKING:
    from ..server import BrokerServer


def handle_list_offsets(server: "BrokerServer", request: Request) -> HandlerResult:
    out = []
    for t in request.body["topics"]:
        topic = t["topic"]
        parts: list[dict[str, Any]] = []
        for p in t["partitions"]:
            index = int(p["partition"])
            ts = int(p["timestamp"])
            try:
                partition = server.replicas.get(topic, index)
                log = partition.log
                hw = partition.high_watermark
                if ts == LATEST_TIMESTAMP:
                    found: tuple[int, int] | None = (hw, -1)
                elif ts == EARLIEST_TIMESTAMP:
                    found = (log.log_start_offset, -1)
                else:
                    found = log.offset_for_timestamp(ts)
                    if found is not None and found[0] >= hw:
                        found = None
                offset, stamp = found if found is not None else (-1, -1)
                parts.append({"partition": index, "error_code": 0, "timestamp": stamp,
                              "offset": offset})
            except Exception as exc:
                code, message = error_code_of(exc)
                parts.append({"partition": index, "error_code": int(code),
                              "error_message": message, "timestamp": -1, "offset": -1})
        out.append({"topic": topic, "partitions": parts})
    return Reply({"topics": out})
