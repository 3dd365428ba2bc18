"""Which partitions this consumer reads and where it stands in each (pure, no I/O).

Invariant: ``position`` is the offset of the next record the application will receive; it
moves only when records are handed out or on seek/reset. ``fetch_position`` is where the next
fetch starts and runs ahead of ``position`` by whatever is prefetched. A seek bumps ``epoch``
so results of fetches sent before it are discarded.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..structs import TopicPartition


@dataclass(slots=True)
class PartitionState:
    position: int | None = None
    fetch_position: int | None = None
    paused: bool = False
    reset: str | None = None  # pending "earliest" / "latest"
    highwater: int | None = None
    log_start_offset: int | None = None
    epoch: int = 0


class SubscriptionState:
    def __init__(self, default_reset: str) -> None:
        self.default_reset = default_reset
        self.partitions: dict[TopicPartition, PartitionState] = {}

    def assign(self, tps: list[TopicPartition]) -> None:
        keep = {tp: st for tp, st in self.partitions.items() if tp in tps}
        self.partitions = {tp: keep.get(tp) or PartitionState() for tp in tps}

    def state(self, tp: TopicPartition) -> PartitionState:
        try:
            return self.partitions[tp]
        except KeyError:
            raise ValueError(f"{tp.topic}-{tp.partition} is not assigned to this consumer; "
                             f"call assign() first") from None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if offset < 0:
            raise ValueError(f"offset must be >= 0, got {offset}")
        st = self.state(tp)
        st.position = st.fetch_position = offset
        st.reset = None
        st.epoch += 1

    def request_reset(self, tp: TopicPartition, strategy: str) -> None:
        st = self.state(tp)
        st.reset = strategy
        st.position = st.fetch_position = None
        st.epoch += 1

    def needs_reset(self) -> list[TopicPartition]:
        return [tp for tp, st in self.partitions.items()
                if st.position is None and st.reset is None]

    def fetchable(self) -> list[TopicPartition]:
        return [tp for tp, st in self.partitions.items()
                if not st.paused and st.fetch_position is not None]

    def lag(self, tp: TopicPartition) -> int | None:
        st = self.state(tp)
        if st.highwater is None or st.position is None:
            return None
        return max(0, st.highwater - st.position)
