"""Leader election rules, Kafka's, as pure functions of a partition's replicas.

Every rule walks the assignment in order, so the preferred (first) replica wins when it is
eligible and leadership returns to where the assignment put it. None means no replica is
eligible: the partition stays without a leader rather than lose committed records.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import NamedTuple


class Election(NamedTuple):
    leader: int | None
    isr: list[int]
    unclean: bool = False  # the leader was not in the ISR: committed records may be lost


def offline_partition(assignment: Sequence[int], isr: Collection[int], live: Collection[int],
                      unclean_allowed: bool) -> Election:
    """The leader died (or the partition is new or offline): the first live ISR member; with
    ``unclean.leader.election.enable``, failing that, the first live replica."""
    for broker in assignment:
        if broker in live and broker in isr:
            return Election(broker, [b for b in isr if b in live])
    if unclean_allowed:
        for broker in assignment:
            if broker in live:
                return Election(broker, [broker], unclean=True)
    return Election(None, list(isr))


def controlled_shutdown(assignment: Sequence[int], isr: Collection[int], live: Collection[int],
                        shutting_down: Collection[int]) -> Election:
    """The leader is stopping: the first live ISR member that is not stopping too; the ISR
    loses every stopping broker."""
    new_isr = [b for b in isr if b not in shutting_down]
    for broker in assignment:
        if broker in live and broker in isr and broker not in shutting_down:
            return Election(broker, new_isr)
    return Election(None, list(isr))


def preferred_replica(assignment: Sequence[int], isr: Collection[int],
                      live: Collection[int]) -> Election:
    """Back to the first replica of the assignment, if it is live and in sync."""
    if assignment and assignment[0] in live and assignment[0] in isr:
        return Election(assignment[0], list(isr))
    return Election(None, list(isr))
