"""Which partitions this consumer reads and where it stands in each (pure, no I/O).

The state does not care who decided the assignment: ``assign`` is called by the user today
(manual assignment) and will be called by a group coordinator after a rebalance later.

Invariants per partition: ``position`` is the offset of the next record the application will
receive; it moves only when records are handed out, or on seek/reset. ``fetch_position`` is
where the next fetch starts and runs ahead of ``position`` by whatever is prefetched. Both are
None while an offset reset (earliest/latest) is pending. Every seek or reset bumps ``epoch``,
so the results of fetches and offset lookups started before it are recognised and dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ..structs import TopicPartition

ResetStrategy = Literal["earliest", "latest", "none"]


@dataclass(slots=True)
class PartitionState:
    position: int | None = None
    fetch_position: int | None = None
    paused: bool = False
    reset: ResetStrategy | None = None  # strategy of a pending reset; None: the default
    reset_from: int | None = None  # the out-of-range position a pending reset replaces
    highwater: int | None = None
    last_stable_offset: int | None = None
    log_start_offset: int | None = None
    epoch: int = 0

    @property
    def has_position(self) -> bool:
        return self.position is not None


class SubscriptionState:
    def __init__(self, default_reset: ResetStrategy) -> None:
        self.default_reset: ResetStrategy = default_reset
        self.partitions: dict[TopicPartition, PartitionState] = {}

    # ------------------------------------------------------------------ assignment
    def assign(self, tps: Iterable[TopicPartition]) -> None:
        """Replace the assignment; partitions kept keep their positions and pause state."""
        wanted = list(dict.fromkeys(tps))
        for tp in wanted:
            if not (isinstance(tp, tuple) and len(tp) == 2 and isinstance(tp[0], str)
                    and isinstance(tp[1], int) and tp[1] >= 0):
                raise TypeError(f"assign() takes TopicPartition(topic, partition) values, "
                                f"got {tp!r}")
        old = self.partitions
        self.partitions = {TopicPartition(*tp): old.get(tp) or PartitionState()
                           for tp in wanted}

    def assigned(self) -> set[TopicPartition]:
        return set(self.partitions)

    def state(self, tp: TopicPartition) -> PartitionState:
        try:
            return self.partitions[tp]
        except KeyError:
            raise ValueError(f"{tp[0]}-{tp[1]} is not assigned to this consumer; "
                             f"call assign() with it first") from None

    # ------------------------------------------------------------------ positions
    def seek(self, tp: TopicPartition, offset: int) -> None:
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be an int >= 0, got {offset!r}")
        st = self.state(tp)
        st.position = st.fetch_position = offset
        st.reset = None
        st.reset_from = None
        st.epoch += 1

    def request_reset(self, tp: TopicPartition, strategy: ResetStrategy,
                      out_of_range: int | None = None) -> None:
        """Forget the position; the next poll looks up ``strategy``'s offset.
        ``out_of_range``: the position the log no longer holds (said again once reset)."""
        st = self.state(tp)
        st.reset = strategy
        if out_of_range is not None or st.position is not None:
            # a new reset; the lookup of one already pending keeps what caused it
            st.reset_from = out_of_range
        st.position = st.fetch_position = None
        st.epoch += 1

    def awaiting_reset(self) -> dict[ResetStrategy, list[TopicPartition]]:
        """Partitions without a position, grouped by the reset strategy that applies."""
        out: dict[ResetStrategy, list[TopicPartition]] = {}
        for tp, st in self.partitions.items():
            if st.position is None:
                out.setdefault(st.reset or self.default_reset, []).append(tp)
        return out

    def complete_reset(self, tp: TopicPartition, epoch: int, offset: int) -> bool:
        """Apply a looked-up offset unless the partition moved (seek, reassign) meanwhile."""
        st = self.partitions.get(tp)
        if st is None or st.epoch != epoch or st.position is not None:
            return False
        st.position = st.fetch_position = offset
        st.reset = None
        st.reset_from = None
        return True

    def advance(self, tp: TopicPartition, position: int) -> None:
        """Records below ``position`` were handed to the application."""
        self.partitions[tp].position = position

    # ------------------------------------------------------------------ flow control
    def pause(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self.state(tp).paused = True

    def resume(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self.state(tp).paused = False

    def paused(self) -> set[TopicPartition]:
        return {tp for tp, st in self.partitions.items() if st.paused}

    def fetchable(self) -> list[TopicPartition]:
        """Partitions a fetch may include: positioned and not paused."""
        return [tp for tp, st in self.partitions.items()
                if not st.paused and st.fetch_position is not None]

    # ------------------------------------------------------------------ broker state
    def update_watermarks(self, tp: TopicPartition, highwater: int, log_start: int,
                          last_stable: int | None = None) -> None:
        st = self.partitions.get(tp)
        if st is not None:
            st.highwater = highwater
            st.log_start_offset = log_start
            st.last_stable_offset = highwater if last_stable is None else last_stable

    def lag(self, tp: TopicPartition) -> int | None:
        """Records below the high watermark not yet handed out (None: not known yet)."""
        st = self.state(tp)
        if st.highwater is None or st.position is None:
            return None
        return max(0, st.highwater - st.position)
