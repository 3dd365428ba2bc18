"""PRODUCE: append producer batches, untouched, to partition leaders.

Batches are only validated (sizes, CRC) and stamped by the log; no record is decoded. The
payload slices handed to the log are views of the request frame: no copy on the way in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from klamm.protocol.errors import ErrorCode, InvalidRequestError
from klamm.protocol.frame import Request

from ..connection import HandlerResult, Reply
from ..errors import error_code_of

if TYPE_CHECKING:
    from ..partition import Partition
    from ..server import BrokerServer


def handle_produce(server: "BrokerServer", request: Request) -> HandlerResult:
    body = request.body
    acks = int(body["acks"])
    if acks not in (0, 1, -1):
        raise InvalidRequestError(f"acks must be 0, 1 or -1 (all), got {acks}")
    payload = request.payload
    entries: list[tuple[str, int, int, int]] = []
    pos = 0
    for t in body["topics"]:
        topic = t["topic"]
        for p in t["partitions"]:
            size = int(p["size"])
            if size < 0:
                raise InvalidRequestError(f"negative size for {topic}-{p['partition']}")
            entries.append((topic, int(p["partition"]), pos, size))
            pos += size
    if pos != len(payload):
        raise InvalidRequestError(
            f"partition sizes add up to {pos} bytes but the payload has {len(payload)}")

    metrics = server.metrics
    results: dict[str, list[dict[str, Any]]] = {}
    to_flush: list[tuple["Partition", int]] = []
    for topic, index, start, size in entries:
        res: dict[str, Any]
        try:
            partition = server.replicas.get(topic, index)
            info = partition.append_as_leader(payload[start:start + size], acks)
            res = {"partition": index, "error_code": 0, "error_message": None,
                   "base_offset": info.base_offset, "log_append_time": info.log_append_time,
                   "log_start_offset": info.log_start_offset}
            metrics.bytes_in.inc(size)
            metrics.messages_in.inc(info.last_offset - info.base_offset + 1)
            if partition.log.needs_flush():
                to_flush.append((partition, info.last_offset + 1))
        except Exception as exc:  # every failure is reported per partition
            code, message = error_code_of(exc)
            res = _error(index, code, message)
            metrics.failed_produce.inc()
        results.setdefault(topic, []).append(res)

    if acks == 0:
        if to_flush:  # no answer is due, but the flush policy still holds
            server.spawn(_flush_then_reply(server, results, to_flush))
        return None
    if not to_flush:
        return Reply(_response(results))
    return _flush_then_reply(server, results, to_flush)


async def _flush_then_reply(server: "BrokerServer", results: dict[str, list[dict[str, Any]]],
                            to_flush: list[tuple["Partition", int]]) -> Reply:
    """Group commit: the fsync of each log covers every batch appended meanwhile."""
    for partition, upto in to_flush:
        try:
            await partition.log.flush(upto)
        except Exception as exc:
            code, message = error_code_of(exc)
            for res in results.get(partition.topic, ()):
                if res["partition"] == partition.index and res["error_code"] == 0:
                    res.update(_error(partition.index, code, message))
                    server.metrics.failed_produce.inc()
    return Reply(_response(results))


def _error(index: int, code: ErrorCode, message: str) -> dict[str, Any]:
    return {"partition": index, "error_code": int(code), "error_message": message,
            "base_offset": -1, "log_append_time": -1, "log_start_offset": -1}


def _response(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"topics": [{"topic": t, "partitions": ps} for t, ps in results.items()]}
