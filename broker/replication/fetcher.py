"""Followers: one fetcher per source broker, fetching every partition this broker follows
from it in one request (Kafka's ``ReplicaFetcherThread``, as an asyncio task).

A partition starts (after a LeaderAndIsr made it a follower) by truncating its log to where it
agrees with the leader: it asks the leader (OFFSET_FOR_LEADER_EPOCH) where its latest epoch
ends in the leader's log and truncates there (KIP-101). When the leader answers with an older
epoch (it never had ours), the follower truncates to the smaller of that answer and where that
older epoch ends in its own log, and asks again with what is then its latest epoch, until the
leader answers its own epoch: the logs then agree up to the truncation point (KIP-279). It never
truncates to its high watermark, which may lag what was committed. Then it fetches from its log
end offset, appends the leader's batches byte for byte (CRC-checked, never re-stamped), and takes
the leader's high watermark. The fetch offset tells the leader how far this follower got.

A long-poll fetch is parked at the leader until new data arrives; when partitions are added (or
re-added in a new leader epoch) while one is parked, the connection is closed and reopened so
the newcomers need not wait for it (``replica.fetch.wait.max.ms``). An error backs a partition
off: the first retry comes after FIRST_RETRY_MS, each further one after twice the last, up to
``replica.fetch.backoff.ms``; a good answer starts the series over. While one is backed off,
the others' fetch is parked no longer than until its retry is due. Most errors are a moment of
disagreement that the next LeaderAndIsr sets right (a new topic's follower often asks before
its leader has applied its own leadership and hears UNKNOWN_LEADER_EPOCH): with a fixed second
of backoff, or a retry held behind a parked fetch, every acks=all produce to that partition
waited that long. Single-threaded (event loop).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from klamm.client.connection import BrokerConnection
from klamm.client.errors import ClientError
from klamm.protocol.api import ApiKey
from klamm.protocol.cluster_api import (BrokerEndpoint, EpochQuery, OffsetForLeaderEpochRequest,
                                        OffsetForLeaderEpochResponse)
from klamm.protocol.errors import ErrorCode
from klamm.protocol.records import CorruptBatch
from klamm.protocol.wire import MalformedMessage, from_wire, to_wire

from ..log import LogStorageError, PartitionLog, UnexpectedAppendOffset
from ..log.leader_epoch import UNDEFINED_EPOCH
from ..partition import Partition
from ..peer_auth import PeerIdentity, open_peer

log = logging.getLogger(__name__)

PartitionKey = tuple[str, int]

# Up to this many partitions backed off in one round get a log line each.
REPORT_EACH = 3

# The first retry of a partition after an error; each further one waits twice as long, up to
# replica.fetch.backoff.ms.
FIRST_RETRY_MS = 10


def retry_delay_ms(failures: int, backoff_ms: int) -> int:
    """How long a partition waits after its ``failures``-th error in a row (1 = the first)."""
    return min(backoff_ms, FIRST_RETRY_MS << min(max(failures - 1, 0), 20))


@dataclass(frozen=True, slots=True)
class FetcherSettings:
    identity: PeerIdentity  # this broker, as it proves itself to leaders
    max_bytes: int
    wait_max_ms: int
    min_bytes: int
    backoff_ms: int
    socket_timeout_ms: int
    client_id: str = "klamm-replica-fetcher"

    @property
    def broker_id(self) -> int:
        return self.identity.broker_id


@dataclass(slots=True)
class FetchState:
    partition: Partition
    leader_epoch: int
    truncating: bool = True
    delayed_until: float = 0.0
    failures: int = 0  # errors in a row; the backoff grows with them


class ReplicaFetcher:
    """Fetches from one source broker for every partition this broker follows there."""

    def __init__(self, source: BrokerEndpoint, settings: FetcherSettings,
                 on_bytes: Callable[[int], None] | None = None) -> None:
        self.source = source
        self.settings = settings
        self.states: dict[PartitionKey, FetchState] = {}
        self._on_bytes = on_bytes or (lambda n: None)
        self._changed = asyncio.Event()
        self._conn: BrokerConnection | None = None
        self._asked: set[PartitionKey] = set()  # partitions of the fetch in flight
        self._restarting = False
        self._task: asyncio.Task[None] | None = None
        self._stopped = False
        self.failures = 0
        self._delays: list[tuple[FetchState, str]] = []  # backed off this round, to report

    # ------------------------------------------------------------------ membership
    def add(self, partition: Partition, leader_epoch: int) -> None:
        self.states[partition.key] = FetchState(partition, leader_epoch)
        self._changed.set()
        if self._asked and self._conn is not None:
            # a fetch is parked at the leader without this partition, or with it in an older
            # leader epoch: start over now
            self._restarting = True
            self._conn.close()

    def remove(self, key: PartitionKey) -> None:
        self.states.pop(key, None)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"replica-fetcher-{self.source.node_id}")

    async def stop(self) -> None:
        self._stopped = True
        self._changed.set()
        if self._conn is not None:
            self._conn.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    # ------------------------------------------------------------------ the loop
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopped:
            now = loop.time()
            ready = [s for s in self.states.values() if s.delayed_until <= now]
            if not ready:
                self._changed.clear()
                wake = min((s.delayed_until for s in self.states.values()), default=None)
                try:
                    await asyncio.wait_for(self._changed.wait(),
                                           None if wake is None else max(wake - now, 0.001))
                except TimeoutError:
                    pass
                continue
            try:
                conn = await self._connection()
                truncating = [s for s in ready if s.truncating]
                try:
                    if truncating:
                        await self._truncate(conn, truncating)
                        continue
                    await self._fetch(conn, ready)
                finally:
                    self._report_delays()
                self.failures = 0
            except (ClientError, OSError) as exc:
                self._drop_connection()
                if self._restarting:
                    self._restarting = False
                    continue
                self.failures += 1
                if self.failures == 1 or self.failures % 50 == 0:
                    log.warning("replica fetch from broker %d (%s:%d) failed: %s; retrying "
                                "every %d ms", self.source.node_id, self.source.host,
                                self.source.port, exc, self.settings.backoff_ms)
                await self._sleep(self.settings.backoff_ms / 1000)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                if self.failures == 1 or self.failures % 50 == 0:
                    log.exception("replica fetcher for broker %d failed (%d time(s)); retrying "
                                  "every %d ms", self.source.node_id, self.failures,
                                  self.settings.backoff_ms)
                self._drop_connection()
                await self._sleep(self.settings.backoff_ms / 1000)

    async def _sleep(self, seconds: float) -> None:
        self._changed.clear()
        try:
            await asyncio.wait_for(self._changed.wait(), seconds)
        except TimeoutError:
            pass

    async def _connection(self) -> BrokerConnection:
        if self._conn is None or not self._conn.connected:
            self._conn = await open_peer(
                self.source.host, self.source.port, self.settings.identity,
                expect=self.source.node_id, client_id=self.settings.client_id,
                timeout=self.settings.socket_timeout_ms / 1000)
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._asked = set()

    def _delay(self, state: FetchState, why: str) -> None:
        """Back ``state``'s partition off; the reason is logged when the round ends."""
        state.failures += 1
        delay_ms = retry_delay_ms(state.failures, self.settings.backoff_ms)
        state.delayed_until = asyncio.get_running_loop().time() + delay_ms / 1000
        self._delays.append((state, why))

    def _report_delays(self) -> None:
        """A line when a partition's trouble starts, when its backoff reaches
        ``replica.fetch.backoff.ms`` and every 50th failure after (not one per quick retry);
        one line for the round when many partitions start at once (a leader that has not
        applied its LeaderAndIsr refuses every partition)."""
        delays, self._delays = self._delays, []
        backoff_ms = self.settings.backoff_ms
        worth = [(s, why) for s, why in delays
                 if s.failures == 1 or s.failures % 50 == 0
                 or retry_delay_ms(s.failures, backoff_ms) == backoff_ms
                 and retry_delay_ms(s.failures - 1, backoff_ms) < backoff_ms]
        if len(worth) <= REPORT_EACH:
            for state, why in worth:
                log.info("%s-%d: %s; retrying in %d ms", state.partition.topic,
                         state.partition.index, why,
                         retry_delay_ms(state.failures, backoff_ms))
        else:
            state, why = worth[0]
            log.info("%d partitions fetched from broker %d backed off, e.g. %s-%d: %s; "
                     "retrying in %d ms", len(worth), self.source.node_id,
                     state.partition.topic, state.partition.index, why,
                     retry_delay_ms(state.failures, backoff_ms))

    # ------------------------------------------------------------------ truncation
    async def _truncate(self, conn: BrokerConnection, states: list[FetchState]) -> None:
        queries = []
        for s in states:
            latest = s.partition.log.leader_epoch_cache.latest_epoch
            if latest == UNDEFINED_EPOCH:  # nothing with an epoch here: nothing to give up
                s.truncating = False
                continue
            queries.append(EpochQuery(s.partition.topic, s.partition.index, latest,
                                      s.leader_epoch))
        if not queries:
            return
        request = OffsetForLeaderEpochRequest(self.settings.broker_id, queries)
        response = await conn.request(ApiKey.OFFSET_FOR_LEADER_EPOCH, to_wire(request),
                                      timeout=self.settings.socket_timeout_ms / 1000)
        try:
            body = from_wire(OffsetForLeaderEpochResponse, response.body)
        except MalformedMessage as exc:
            raise ClientError(f"bad OffsetForLeaderEpoch answer: {exc}") from None
        if body.error_code:
            raise ClientError(f"OffsetForLeaderEpoch refused: {body.error_message}")
        for answer in body.partitions:
            state = self.states.get((answer.topic, answer.partition))
            if state is None or not state.truncating:
                continue
            if answer.error_code:
                self._delay(state, f"leader answered {ErrorCode(answer.error_code).name} "
                                   f"to OffsetForLeaderEpoch")
                continue
            try:
                self._apply_epoch_answer(state, answer.leader_epoch, answer.end_offset)
            except LogStorageError as exc:
                self._delay(state, f"cannot truncate: {exc}")

    def _apply_epoch_answer(self, state: FetchState, leader_epoch: int, end_offset: int) -> None:
        plog = state.partition.log
        ours = plog.leader_epoch_cache.latest_epoch
        before = plog.log_end_offset
        if leader_epoch == UNDEFINED_EPOCH or end_offset < 0:
            # the leader cannot place our epoch: keep only what is known committed
            target = plog.high_watermark
            agreed = True
        elif leader_epoch == ours:
            target = min(end_offset, before)
            agreed = True
        else:  # KIP-279: the leader never had our latest epoch
            _, our_end = plog.end_offset_for_epoch(leader_epoch)
            target = min(end_offset, before if our_end < 0 else our_end)
            agreed = False
        if target < before:
            self._truncate_log(plog, target, f"epoch {leader_epoch} ends at {end_offset} there")
        state.failures = 0
        if agreed or plog.leader_epoch_cache.latest_epoch in (UNDEFINED_EPOCH, leader_epoch):
            state.truncating = False

    def _truncate_log(self, plog: PartitionLog, target: int, why: str) -> None:
        before, hw = plog.log_end_offset, plog.high_watermark
        plog.truncate_to(target)
        end = plog.log_end_offset
        if end < hw:  # only an unclean election makes a leader lack committed records
            log.error("%s-%d: truncated from %d to %d to match leader %d (%s): committed "
                      "records at offsets %d..%d are lost (an unclean leader election chose a "
                      "replica without them)", plog.topic, plog.partition, before, end,
                      self.source.node_id, why, end, hw - 1)
        else:
            log.warning("%s-%d: truncated from %d to %d to match leader %d (%s): offsets "
                        "%d..%d here were never committed (or were lost in an unclean "
                        "election)", plog.topic, plog.partition, before, end,
                        self.source.node_id, why, end, before - 1)

    # ------------------------------------------------------------------ fetching
    def _wait_ms(self, now: float) -> int:
        return parked_wait_ms(self.settings.wait_max_ms,
                              (s.delayed_until for s in self.states.values()), now)

    def _fetch_body(self, states: list[FetchState], wait_ms: int) -> dict[str, Any]:
        topics: dict[str, list[dict[str, int]]] = {}
        for s in states:
            p = s.partition
            topics.setdefault(p.topic, []).append({
                "partition": p.index, "fetch_offset": p.log.log_end_offset,
                "partition_max_bytes": self.settings.max_bytes,
                "current_leader_epoch": s.leader_epoch})
        return {"replica_id": self.settings.broker_id,
                "max_wait_ms": wait_ms, "min_bytes": self.settings.min_bytes,
                "max_bytes": self.settings.max_bytes,
                "topics": [{"topic": t, "partitions": ps} for t, ps in topics.items()]}

    async def _fetch(self, conn: BrokerConnection, states: list[FetchState]) -> None:
        asked = {s.partition.key: (s, s.partition.log.log_end_offset) for s in states}
        self._restarting = False  # a close that came after the last answer is not this fetch's
        self._asked = set(asked)
        wait_ms = self._wait_ms(asyncio.get_running_loop().time())
        try:
            response = await conn.request(
                ApiKey.FETCH, self._fetch_body(states, wait_ms),
                timeout=(self.settings.socket_timeout_ms + wait_ms) / 1000)
        finally:
            self._asked = set()
        body = response.body
        if not isinstance(body, dict) or "topics" not in body:
            code = body.get("error_code", -1) if isinstance(body, dict) else -1
            raise ClientError(f"fetch refused by broker {self.source.node_id}: error {code}")
        payload = response.payload
        pos = 0
        to_flush = []
        for t in body["topics"]:
            for p in t["partitions"]:
                size = int(p.get("records_size", 0))
                data = payload[pos:pos + size]
                pos += size
                key = (t["topic"], int(p["partition"]))
                entry = asked.get(key)
                state = self.states.get(key)
                if entry is None or state is not entry[0]:
                    continue  # removed or re-added meanwhile
                if self._apply_fetched(state, entry[1], p, data):
                    to_flush.append(state.partition.log)
        for plog in to_flush:  # flush.messages / flush.ms hold for followers too
            try:
                await plog.flush()
            except LogStorageError as exc:
                log.error("flush of %s failed: %s", plog.dir, exc)

    def _apply_fetched(self, state: FetchState, offset: int, p: dict[str, Any],
                       data: memoryview) -> bool:
        """Append one partition's answer; True when its log wants a flush."""
        partition = state.partition
        plog = partition.log
        code = int(p.get("error_code", 0))
        if code == ErrorCode.OFFSET_OUT_OF_RANGE:
            self._out_of_range(state, offset, int(p.get("log_start_offset", -1)),
                               int(p.get("log_end_offset", -1)))
            return False
        if code:
            self._delay(state, f"leader {self.source.node_id} answered "
                               f"{_code_name(code)}: {p.get('error_message') or ''}")
            return False
        if plog.log_end_offset != offset:  # truncated meanwhile; fetch again from the end
            return False
        try:
            if len(data):
                plog.append_as_follower(data)
                self._on_bytes(len(data))
            plog.update_high_watermark(int(p["high_watermark"]))
        except (CorruptBatch, UnexpectedAppendOffset) as exc:
            self._delay(state, f"batches from leader {self.source.node_id} refused: {exc}")
            return False
        except LogStorageError as exc:
            self._delay(state, f"cannot append: {exc}")
            return False
        state.failures = 0
        return plog.needs_flush()

    def _out_of_range(self, state: FetchState, offset: int, leader_start: int,
                      leader_end: int) -> None:
        plog = state.partition.log
        if 0 <= leader_end < offset:
            self._truncate_log(plog, leader_end, f"its log ends at {leader_end}")
        elif leader_start > offset:
            log.info("%s-%d: our log end %d is before leader %d's log start %d; starting "
                     "over there", plog.topic, plog.partition, offset, self.source.node_id,
                     leader_start)
            plog.truncate_fully_and_start_at(leader_start)
        else:
            self._delay(state, f"offset {offset} out of range at the leader")


def _code_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return str(code)


def parked_wait_ms(wait_max_ms: int, delayed_until: Iterable[float], now: float) -> int:
    """How long the leader may park a fetch: ``replica.fetch.wait.max.ms``, but no longer than
    until the first backed-off partition (retry due at a ``delayed_until`` after ``now``, in
    loop seconds) may be asked again: a fetch parked for the others would hold its retry back
    for the whole wait."""
    wait = wait_max_ms
    for due in delayed_until:
        if due > now:
            wait = min(wait, max(1, math.ceil((due - now) * 1000)))
    return wait


class ReplicaFetcherManager:
    """The fetchers of this broker, one per source broker; a partition is in at most one."""

    def __init__(self, settings: FetcherSettings,
                 on_bytes: Callable[[int], None] | None = None) -> None:
        self.settings = settings
        self.fetchers: dict[int, ReplicaFetcher] = {}
        self._on_bytes = on_bytes
        self._where: dict[PartitionKey, int] = {}

    def add(self, partition: Partition, leader: BrokerEndpoint, leader_epoch: int) -> None:
        """Follow ``leader`` for ``partition`` from a truncation round (a new leadership)."""
        self.remove(partition.key)
        fetcher = self.fetchers.get(leader.node_id)
        if fetcher is not None and (fetcher.source.host, fetcher.source.port) != \
                (leader.host, leader.port):
            asyncio.ensure_future(fetcher.stop())  # the broker came back elsewhere
            for key in fetcher.states:
                self._where.pop(key, None)
            fetcher = None
        if fetcher is None:
            fetcher = ReplicaFetcher(leader, self.settings, self._on_bytes)
            self.fetchers[leader.node_id] = fetcher
            fetcher.start()
        fetcher.add(partition, leader_epoch)
        self._where[partition.key] = leader.node_id

    def remove(self, key: PartitionKey) -> None:
        source = self._where.pop(key, None)
        if source is not None and source in self.fetchers:
            self.fetchers[source].remove(key)

    def following(self, key: PartitionKey) -> int | None:
        return self._where.get(key)

    async def close(self) -> None:
        fetchers = list(self.fetchers.values())
        self.fetchers.clear()
        self._where.clear()
        await asyncio.gather(*(f.stop() for f in fetchers), return_exceptions=True)

