"""Moving a partition to new replicas (Kafka's partition reassignment, KIP-455): pure rules.

A reassignment from replicas ``current`` to ``target`` goes in two steps, each a conditional
write the controller makes:

1. Grow: the partition's replicas become ``target`` followed by the ``current`` ones not in
   it (``expanded``). The added brokers get LeaderAndIsr, create the replica and fetch from
   the leader; the leader admits them to the ISR once they have caught up, as any follower.
2. Finish, once every target replica is in the ISR (``finishing``): the ISR keeps only target
   replicas; a leader that is not a target hands over to the first target replica in the ISR
   (a new leader epoch); then the replicas become ``target`` and the removed brokers delete
   theirs.

Nothing acknowledged is lost: the ISR never loses a member before the target replicas are in
it, and a removed leader hands over only to an in-sync replica. Each step is idempotent, so a
new controller repeats from the stored state what a predecessor left half done.
"""

from __future__ import annotations

from collections.abc import Sequence

from .context import TP, ControllerContext, StateChange


def expanded(current: Sequence[int], target: Sequence[int]) -> list[int]:
    """The replicas while moving: the target ones, then those leaving."""
    return list(target) + [b for b in current if b not in target]


def finishing(ctx: ControllerContext, tp: TP, target: Sequence[int]) -> StateChange | None:
    """The state that ends the move of ``tp``, or None while a target replica is not in the
    ISR (or no target replica in the ISR is live to lead)."""
    state = ctx.states.get(tp)
    if state is None or not set(target) <= set(state.isr):
        return None
    isr = [b for b in state.isr if b in target]
    live = [b for b in ctx.live if b not in ctx.shutting_down]
    if state.leader in target and state.leader in ctx.live:
        return StateChange(tp, state, state.with_isr(isr, ctx.epoch),
                           f"reassignment to {list(target)} done")
    leader = next((b for b in target if b in isr and b in live), None)
    if leader is None:
        return None
    return StateChange(tp, state, state.with_leader(leader, isr, ctx.epoch),
                       f"reassignment to {list(target)}: leader {state.leader} leaves")


def growing(ctx: ControllerContext, tp: TP) -> StateChange | None:
    """The same leadership and ISR written again, so the partition epoch moves and every
    replica hears of the grown replica list; None when the partition has no state."""
    state = ctx.states.get(tp)
    if state is None:
        return None
    return StateChange(tp, state, state.with_isr(state.isr, ctx.epoch),
                       "reassignment started")
