"""One partition replica on this broker, and the rules of replication Kafka keeps in its
``Partition``: who leads, the ISR, each follower's progress, the high watermark.

Invariants:
- ``log_start_offset <= high_watermark <= log_end_offset``; consumers read below the high
  watermark only; only the leader appends producer batches, stamping its leader epoch.
- As leader, the high watermark is the smallest log end offset among the *maximal ISR* (the
  ISR plus a member being added, while the change waits for the controller) and followers that
  caught up within ``replica.lag.time.max.ms``; it never moves back. A follower's log end offset
  is unknown until it fetches in this leader epoch, so a new leader's high watermark moves
  only once every ISR member has fetched from it.
- One ISR change is in flight at a time (``pending_isr``); it takes effect only when the
  controller confirms it (a shrink keeps counting the removed follower until then, so the high
  watermark stays safe if the change is refused).
- A LeaderAndIsr is applied only when its leader epoch is newer, or the same with a newer
  partition epoch (an ISR change of the same leadership): stale controller decisions lose.

Time comes in as milliseconds from the caller; nothing here waits or starts a timer, so the
rules are tested without an event loop. Single-threaded: used from the event loop only.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

from klamm.broker.config import TopicConfig
from klamm.protocol.cluster_api import NO_LEADER, AlterPartitionItem
from klamm.protocol.errors import (FencedLeaderEpochError, NotEnoughReplicasError,
                                   NotLeaderOrFollowerError, UnknownLeaderEpochError)

from .log import AppendInfo, FetchData, PartitionLog


@dataclass(slots=True)
class FollowerState:
    """The leader's view of one follower, from its fetches."""

    log_end_offset: int = -1  # -1: has not fetched from this leadership yet
    last_caught_up_ms: int = 0  # last time it had everything the leader had
    last_fetch_ms: int = 0
    last_fetch_leader_end: int = -1  # the leader's log end offset at that fetch

    def caught_up(self, leader_end: int, now_ms: int, lag_ms: int) -> bool:
        return self.log_end_offset >= leader_end or now_ms - self.last_caught_up_ms <= lag_ms


class Partition:
    def __init__(self, topic: str, index: int, log: PartitionLog, broker_id: int,
                 topic_id: str = "") -> None:
        self.topic = topic
        self.index = index
        self.key = (topic, index)
        self.log = log
        self.broker_id = broker_id
        self.topic_id = topic_id
        self.replicas: list[int] = [broker_id]
        self.leader_id = NO_LEADER
        self.leader_epoch = -1
        self.partition_epoch = -1
        self.isr: tuple[int, ...] = ()
        self.pending_isr: tuple[int, ...] | None = None
        self.followers: dict[int, FollowerState] = {}
        self.epoch_start_offset = 0  # log end offset when this leadership began
        # (end offset, bytes) of appends above the high watermark, to tell parked consumer
        # fetches how many bytes a high-watermark move made readable
        self._uncommitted: collections.deque[tuple[int, int]] = collections.deque()

    # ------------------------------------------------------------------ state
    @property
    def is_leader(self) -> bool:
        return self.leader_id == self.broker_id

    @property
    def config(self) -> TopicConfig:
        return self.log.config

    @property
    def high_watermark(self) -> int:
        return self.log.high_watermark

    @property
    def maximal_isr(self) -> tuple[int, ...]:
        if self.pending_isr is None:
            return self.isr
        return self.isr + tuple(b for b in self.pending_isr if b not in self.isr)

    @property
    def under_replicated(self) -> bool:
        return self.is_leader and len(self.isr) < len(self.replicas)

    @property
    def under_min_isr(self) -> bool:
        return self.is_leader and len(self.isr) < self.config.min_insync_replicas

    def __repr__(self) -> str:
        return (f"Partition({self.topic}-{self.index}, leader={self.leader_id}, "
                f"epoch={self.leader_epoch}/{self.partition_epoch}, isr={list(self.isr)}, "
                f"hw={self.high_watermark}, leo={self.log.log_end_offset})")

    def is_newer(self, leader_epoch: int, partition_epoch: int) -> bool:
        """Whether a controller decision with these epochs supersedes what is applied."""
        return leader_epoch > self.leader_epoch or (
            leader_epoch == self.leader_epoch and partition_epoch > self.partition_epoch)

    # ------------------------------------------------------------------ transitions
    def become_leader(self, leader_epoch: int, partition_epoch: int, isr: list[int],
                      replicas: list[int], now_ms: int) -> bool:
        """Lead this partition (or take an ISR update of the same leadership). Returns
        whether the leadership is new (followers' states start over)."""
        new_leadership = not self.is_leader or leader_epoch != self.leader_epoch
        if new_leadership:  # first, durably: a failing disk leaves the partition as it was
            self.log.leader_epoch_cache.assign(leader_epoch, self.log.log_end_offset)
        self.leader_id = self.broker_id
        self.leader_epoch = leader_epoch
        self.partition_epoch = partition_epoch
        self.isr = tuple(isr)
        self.pending_isr = None
        self.replicas = list(replicas)
        if new_leadership:
            self.epoch_start_offset = self.log.log_end_offset
            self.followers = {b: FollowerState(last_caught_up_ms=now_ms if b in isr else 0)
                              for b in replicas if b != self.broker_id}
            self._uncommitted.clear()
            above = self.log.log_end_offset - self.high_watermark
            if above > 0:  # sizes unknown: count one byte, enough to wake a min_bytes=1 poll
                self._uncommitted.append((self.log.log_end_offset, 1))
        else:
            for b in replicas:
                if b != self.broker_id:
                    self.followers.setdefault(b, FollowerState())
            for b in list(self.followers):
                if b not in replicas:
                    del self.followers[b]
                elif b not in isr:  # out of the ISR: it must not hold the high watermark
                    self.followers[b].last_caught_up_ms = 0
        return new_leadership

    def become_follower(self, leader: int, leader_epoch: int, partition_epoch: int,
                        isr: list[int], replicas: list[int]) -> bool:
        """Follow ``leader`` (NO_LEADER: wait for one). Returns whether the leader or its
        epoch changed (the follower must then truncate by epoch before fetching)."""
        changed = leader != self.leader_id or leader_epoch != self.leader_epoch
        self.leader_id = leader
        self.leader_epoch = leader_epoch
        self.partition_epoch = partition_epoch
        self.isr = tuple(isr)
        self.pending_isr = None
        self.replicas = list(replicas)
        self.followers = {}
        self._uncommitted.clear()
        return changed

    def stop_leading(self) -> None:
        """No longer a replica we serve (StopReplica): refuse produce and fetch from now."""
        self.leader_id = NO_LEADER
        self.followers = {}
        self.pending_isr = None
        self._uncommitted.clear()

    # ------------------------------------------------------------------ leader: appends
    def check_leader(self, current_leader_epoch: int = -1) -> None:
        """Raise unless this replica leads the partition in ``current_leader_epoch`` (-1: any
        epoch): FENCED_LEADER_EPOCH for an older one, UNKNOWN_LEADER_EPOCH for a newer."""
        if current_leader_epoch >= 0:
            if current_leader_epoch < self.leader_epoch:
                raise FencedLeaderEpochError(
                    f"{self.topic}-{self.index}: leader epoch {current_leader_epoch} is older "
                    f"than the current {self.leader_epoch}")
            if current_leader_epoch > self.leader_epoch:
                raise UnknownLeaderEpochError(
                    f"{self.topic}-{self.index}: leader epoch {current_leader_epoch} is newer "
                    f"than this broker's {self.leader_epoch}")
        if not self.is_leader:
            leader = "no leader" if self.leader_id == NO_LEADER else f"led by {self.leader_id}"
            raise NotLeaderOrFollowerError(
                f"broker {self.broker_id} is not the leader of {self.topic}-{self.index} "
                f"({leader})")

    def append_as_leader(self, payload: memoryview, acks: int) -> AppendInfo:
        """Append producer batches; raises the mapped errors without writing on refusal.
        The caller then calls ``maybe_advance_high_watermark``."""
        self.check_leader()
        if acks == -1 and len(self.isr) < self.config.min_insync_replicas:
            raise NotEnoughReplicasError(
                f"{self.topic}-{self.index} has {len(self.isr)} in-sync replica(s) "
                f"{list(self.isr)}, min.insync.replicas={self.config.min_insync_replicas}")
        info = self.log.append(payload, self.leader_epoch)
        self._uncommitted.append((info.last_offset + 1, len(payload)))
        return info

    def read(self, offset: int, max_bytes: int, min_one: bool, replica_id: int = -1,
             current_leader_epoch: int = -1) -> FetchData:
        """Batches for a consumer (below the high watermark) or a follower (up to the log
        end); only the leader serves either."""
        self.check_leader(current_leader_epoch)
        max_offset = self.log.log_end_offset if replica_id >= 0 else self.high_watermark
        return self.log.read(offset, max_bytes, max_offset, min_one)

    # ------------------------------------------------------------------ leader: followers
    def update_follower(self, replica_id: int, fetch_offset: int, now_ms: int) -> bool:
        """Record a follower's fetch at ``fetch_offset`` (= its log end offset). Returns
        whether it may now join the ISR (caught up to the high watermark in this epoch)."""
        state = self.followers.get(replica_id)
        if state is None:
            raise NotLeaderOrFollowerError(
                f"broker {replica_id} is not a replica of {self.topic}-{self.index} "
                f"(replicas {self.replicas})")
        leader_end = self.log.log_end_offset
        if fetch_offset >= leader_end:
            state.last_caught_up_ms = now_ms
        elif fetch_offset >= state.last_fetch_leader_end >= 0:
            state.last_caught_up_ms = max(state.last_caught_up_ms, state.last_fetch_ms)
        state.log_end_offset = fetch_offset
        state.last_fetch_leader_end = leader_end
        state.last_fetch_ms = now_ms
        return (replica_id not in self.maximal_isr and self.pending_isr is None
                and fetch_offset >= self.high_watermark
                and fetch_offset >= self.epoch_start_offset)

    def maybe_advance_high_watermark(self, now_ms: int, lag_ms: int) -> int:
        """Move the high watermark to what every member of the maximal ISR (and every
        recently caught-up follower) has. Returns the bytes it made readable (0: no move)."""
        if not self.is_leader:
            return 0
        leader_end = self.log.log_end_offset
        new_hw = leader_end
        isr = self.maximal_isr
        for broker, state in self.followers.items():
            if state.log_end_offset < new_hw and (
                    broker in isr or state.caught_up(leader_end, now_ms, lag_ms)):
                new_hw = state.log_end_offset
        old = self.log.high_watermark
        if new_hw <= old:
            return 0
        self.log.update_high_watermark(new_hw)
        committed = 0
        pending = self._uncommitted
        while pending and pending[0][0] <= new_hw:
            committed += pending.popleft()[1]
        return max(committed, 1)

    def out_of_sync(self, now_ms: int, lag_ms: int) -> list[int]:
        """ISR followers that have not caught up within ``lag_ms`` (and are behind now)."""
        leader_end = self.log.log_end_offset
        out = []
        for broker in self.isr:
            if broker == self.broker_id:
                continue
            state = self.followers.get(broker)
            if state is None or not state.caught_up(leader_end, now_ms, lag_ms):
                out.append(broker)
        return out

    def propose_isr(self, isr: list[int]) -> AlterPartitionItem:
        """Mark an ISR change as in flight; the item is what to send the controller."""
        self.pending_isr = tuple(isr)
        return AlterPartitionItem(self.topic, self.index, self.leader_epoch, list(isr),
                                  self.partition_epoch)

    def isr_change_done(self, leader_epoch: int, isr: list[int] | None,
                        partition_epoch: int) -> bool:
        """The controller answered an ISR change: ``isr`` None means refused. Applied only
        to the same leadership and a partition epoch not older than ours."""
        if not self.is_leader or leader_epoch != self.leader_epoch:
            return False
        self.pending_isr = None
        if isr is None or partition_epoch < self.partition_epoch:
            return False
        self.isr = tuple(isr)
        self.partition_epoch = partition_epoch
        return True

    def enough_replicas(self, required_offset: int) -> tuple[bool, bool]:
        """For an acks=all produce waiting on ``required_offset``: ``(done, enough)`` —
        done once the high watermark reached it; enough unless the ISR fell below
        min.insync.replicas meanwhile."""
        if self.high_watermark < required_offset:
            return False, True
        return True, len(self.maximal_isr) >= self.config.min_insync_replicas
