"""FETCH: whole record batches below the high watermark, sent from the page cache.

The response body lists each partition's ``records_size``; the bytes themselves are file regions
the connection sends with sendfile after the body. When fewer than ``min_bytes`` are available,
the request parks in ``FetchWaiters`` and the append that brings enough data answers it on the
spot, or its ``max_wait_ms`` timer does.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from klamm.protocol.frame import Request

from ..connection import HandlerResult, PendingReply, Reply
from ..errors import error_code_of
from ..log import FileRegion

if TYPE_CHECKING:
    from ..server import BrokerServer

PartitionRequest = tuple[str, int, int, int]  # topic, partition, fetch offset, max bytes


def handle_fetch(server: "BrokerServer", request: Request) -> HandlerResult:
    body = request.body
    replica_id = int(body.get("replica_id", -1))
    max_wait_ms = max(0, int(body.get("max_wait_ms", 0)))
    min_bytes = max(0, int(body.get("min_bytes", 1)))
    max_bytes = max(0, int(body.get("max_bytes", 50 * 1024 * 1024)))
    wanted: list[PartitionRequest] = [
        (t["topic"], int(p["partition"]), int(p["fetch_offset"]),
         max(0, int(p["partition_max_bytes"])))
        for t in body["topics"] for p in t["partitions"]]

    reply, size, errors = _read(server, wanted, max_bytes, replica_id)
    if max_wait_ms == 0 or size >= min_bytes or errors or not wanted or server.stopping:
        return reply
    reply.release()
    pending = PendingReply()

    def answer() -> None:
        try:
            late, _, _ = _read(server, wanted, max_bytes, replica_id)
        except Exception as exc:
            late = server.error_reply_for(exc)
        pending.resolve(late)

    keys = {(topic, index) for topic, index, _, _ in wanted}
    parked = server.replicas.waiters.park(keys, min_bytes - size, max_wait_ms / 1000, answer)
    pending.on_cancel = parked.cancel
    return pending


def _read(server: "BrokerServer", wanted: list[PartitionRequest], max_bytes: int,
          replica_id: int) -> tuple[Reply, int, bool]:
    metrics = server.metrics
    replicas = server.replicas
    topics: dict[str, list[dict[str, Any]]] = {}
    regions: list[FileRegion] = []
    total = 0
    errors = False
    for topic, index, offset, partition_max in wanted:
        entry: dict[str, Any]
        try:
            partition = replicas.get(topic, index)
            budget = min(partition_max, max_bytes - total)
            if budget <= 0 and total > 0:
                data_size = 0
                hw = partition.high_watermark
                start = partition.log.log_start_offset
            else:
                data = partition.read(offset, max(budget, 0), min_one=total == 0,
                                      replica_id=replica_id)
                regions.extend(data.regions)
                data_size = data.size
                hw = data.high_watermark
                start = data.log_start_offset
            total += data_size
            entry = {"partition": index, "error_code": 0, "high_watermark": hw,
                     "log_start_offset": start, "records_size": data_size}
        except Exception as exc:
            code, message = error_code_of(exc)
            errors = True
            metrics.failed_fetch.inc()
            entry = {"partition": index, "error_code": int(code), "error_message": message,
                     "high_watermark": -1, "log_start_offset": -1, "records_size": 0}
        topics.setdefault(topic, []).append(entry)
    metrics.bytes_out.inc(total)
    body = {"error_code": 0,
            "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()]}
    return Reply(body, regions=regions, on_sent=_closer(regions)), total, errors


def _closer(regions: list[FileRegion]) -> Any:
    if not regions:
        return None

    def close() -> None:
        for region in regions:
            try:
                os.close(region.fd)
            except OSError:
                pass
    return close
