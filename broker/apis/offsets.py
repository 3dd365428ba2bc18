"""LIST_OFFSETS (earliest, latest = the high watermark, or the first offset at a time) and
OFFSET_FOR_LEADER_EPOCH (where an epoch ends in the leader's log: followers truncate to it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from klamm.protocol.api import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from klamm.protocol.cluster_api import (EpochEndOffset, OffsetForLeaderEpochRequest,
                                        OffsetForLeaderEpochResponse)
from klamm.protocol.frame import Request
from klamm.protocol.wire import from_wire, to_wire

from ..reply import HandlerResult, Reply
from . import fields
from ..errors import error_code_of

if TYPE_CHECKING:
    from ..replica_manager import ReplicaManager


class OffsetsApi:
    def __init__(self, replicas: "ReplicaManager") -> None:
        self.replicas = replicas

    def list_offsets(self, request: Request) -> HandlerResult:
        out = []
        for t in fields.topic_partitions(fields.body_map(request.body)):
            topic = t["topic"]
            parts: list[dict[str, Any]] = []
            for p in t["partitions"]:
                index = fields.integer(p, "partition")
                ts = fields.integer(p, "timestamp")
                epoch = fields.integer(p, "current_leader_epoch", -1)
                try:
                    partition = self.replicas.get(topic, index)
                    partition.check_leader(epoch)
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

    def offset_for_leader_epoch(self, request: Request) -> HandlerResult:
        req = from_wire(OffsetForLeaderEpochRequest, request.body)
        answers = []
        for q in req.partitions:
            try:
                partition = self.replicas.get(q.topic, q.partition)
                partition.check_leader(q.current_leader_epoch)
                epoch, end = partition.log.end_offset_for_epoch(q.leader_epoch)
                answers.append(EpochEndOffset(q.topic, q.partition, 0, epoch, end))
            except Exception as exc:
                code, message = error_code_of(exc)
                answers.append(EpochEndOffset(q.topic, q.partition, int(code),
                                              error_message=message))
        return Reply(to_wire(OffsetForLeaderEpochResponse(0, None, answers)))
