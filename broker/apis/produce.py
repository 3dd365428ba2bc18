"""PRODUCE: append producer batches, untouched, to partition leaders.

Batches are only validated (sizes, CRC) and stamped by the log; no record is decoded. The
payload slices handed to the log are views of the request frame: no copy on the way in.
acks=all answers once the high watermark passed every appended batch (the replica manager's
purgatory, woken by follower fetches), or after the request's ``timeout_ms`` with
REQUEST_TIMED_OUT; the durability policy (``flush.messages``/``flush.ms``) is the log's, and
a due fsync is awaited before the answer. The handler only dispatches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from klamm.protocol.errors import ErrorCode, InvalidRequestError
from klamm.protocol.frame import Request

from . import fields
from ..reply import HandlerResult, PendingReply, Reply
from ..errors import error_code_of
from ..produce_purgatory import DelayedProduce

if TYPE_CHECKING:
    from ..metrics import BrokerMetrics
    from ..partition import Partition
    from ..replica_manager import ReplicaManager

Results = dict[str, list[dict[str, Any]]]
Key = tuple[str, int]

_WAIT_ERRORS = {
    ErrorCode.REQUEST_TIMED_OUT: "not replicated to every in-sync replica within the "
                                 "request's timeout_ms ({timeout} ms); it may still be",
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND: "stored by the leader, but the ISR fell below "
                                                "min.insync.replicas before it was replicated",
    ErrorCode.NOT_LEADER_OR_FOLLOWER: "the partition's leadership moved while the write waited "
                                      "for replication",
}


class ProduceApi:
    def __init__(self, replicas: "ReplicaManager", metrics: "BrokerMetrics",
                 spawn: Callable[[Coroutine[Any, Any, Any]], None]) -> None:
        self.replicas = replicas
        self.metrics = metrics
        self.spawn = spawn

    def handle(self, request: Request) -> HandlerResult:
        body = fields.body_map(request.body)
        acks = fields.integer(body, "acks")
        if acks not in (0, 1, -1):
            raise InvalidRequestError(f"acks must be 0, 1 or -1 (all), got {acks}")
        timeout_ms = fields.integer(body, "timeout_ms", 30_000)
        payload = request.payload
        entries: list[tuple[str, int, int, int]] = []
        pos = 0
        integer = fields.integer
        for t in fields.topic_partitions(body):
            topic = t["topic"]
            for p in t["partitions"]:
                size = integer(p, "size", low=0)
                entries.append((topic, integer(p, "partition"), pos, size))
                pos += size
        if pos != len(payload):
            raise InvalidRequestError(
                f"partition sizes add up to {pos} bytes but the payload has {len(payload)}")

        metrics = self.metrics
        replicas = self.replicas
        results: Results = {}
        to_flush: list[tuple["Partition", int]] = []
        required: dict[Key, int] = {}
        for topic, index, start, size in entries:
            res: dict[str, Any]
            try:
                partition = replicas.get(topic, index)
                info = replicas.append(partition, payload[start:start + size], acks)
                res = {"partition": index, "error_code": 0, "error_message": None,
                       "base_offset": info.base_offset, "log_append_time": info.log_append_time,
                       "log_start_offset": info.log_start_offset}
                metrics.bytes_in.inc(size)
                metrics.messages_in.inc(info.last_offset - info.base_offset + 1)
                if partition.log.needs_flush():
                    to_flush.append((partition, info.last_offset + 1))
                if acks == -1 and partition.high_watermark <= info.last_offset:
                    required[partition.key] = info.last_offset + 1
            except Exception as exc:  # every failure is reported per partition
                code, message = error_code_of(exc)
                res = _error(index, code, message)
                metrics.failed_produce.inc()
            results.setdefault(topic, []).append(res)

        if acks == 0:
            if to_flush:  # no answer is due, but the flush policy still holds
                self.spawn(self._flush(results, to_flush))
            return None
        if to_flush:
            return self._flush_then_wait(results, to_flush, required, timeout_ms)
        if required:
            return self._wait(results, required, timeout_ms)
        return Reply(_response(results))

    def _wait(self, results: Results, required: dict[Key, int], timeout_ms: int) -> PendingReply:
        pending = PendingReply()

        def complete(errors: dict[Key, ErrorCode]) -> None:
            self._apply_wait_errors(results, errors, timeout_ms)
            pending.resolve(Reply(_response(results)))

        op = DelayedProduce(required, complete)
        pending.on_cancel = op.cancel
        self.replicas.purgatory.watch(op, required, timeout_ms)
        return pending

    async def _flush_then_wait(self, results: Results, to_flush: list[tuple["Partition", int]],
                               required: dict[Key, int], timeout_ms: int) -> Reply:
        await self._flush(results, to_flush)
        failed = {(t, r["partition"]) for t, rs in results.items() for r in rs if r["error_code"]}
        required = {k: v for k, v in required.items() if k not in failed}
        if required:
            done: asyncio.Future[dict[Key, ErrorCode]] = \
                asyncio.get_running_loop().create_future()

            def complete(errors: dict[Key, ErrorCode]) -> None:
                if not done.done():
                    done.set_result(errors)
            op = DelayedProduce(required, complete)
            self.replicas.purgatory.watch(op, required, timeout_ms)
            try:
                errors = await done
            except asyncio.CancelledError:
                op.cancel()
                raise
            self._apply_wait_errors(results, errors, timeout_ms)
        return Reply(_response(results))

    def _apply_wait_errors(self, results: Results, errors: dict[Key, ErrorCode],
                           timeout_ms: int) -> None:
        for (topic, index), code in errors.items():
            for res in results.get(topic, ()):
                if res["partition"] == index and res["error_code"] == 0:
                    res.update(_error(index, code, _WAIT_ERRORS.get(code, code.name).format(
                        timeout=timeout_ms)))
                    self.metrics.failed_produce.inc()

    async def _flush(self, results: Results, to_flush: list[tuple["Partition", int]]) -> None:
        """Group commit: the fsync of each log covers every batch appended meanwhile."""
        for partition, upto in to_flush:
            try:
                await partition.log.flush(upto)
            except Exception as exc:
                code, message = error_code_of(exc)
                for res in results.get(partition.topic, ()):
                    if res["partition"] == partition.index and res["error_code"] == 0:
                        res.update(_error(partition.index, code, message))
                        self.metrics.failed_produce.inc()


def _error(index: int, code: ErrorCode, message: str) -> dict[str, Any]:
    return {"partition": index, "error_code": int(code), "error_message": message,
            "base_offset": -1, "log_append_time": -1, "log_start_offset": -1}


def _response(results: Results) -> dict[str, Any]:
    return {"topics": [{"topic": t, "partitions": ps} for t, ps in results.items()]}
