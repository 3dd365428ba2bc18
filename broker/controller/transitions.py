"""What each controller event does to partition states: pure functions of the context.

Each returns the ``StateChange``s to write (conditionally, on the old version) and never
touches the context itself: the controller applies a change only once its write succeeded.
Rules (Kafka's):
- a leader change bumps the leader epoch; an ISR change keeps it (the partition epoch, the
  state node's version, moves with every write);
- the ISR never becomes empty: when the last member dies it stays, with no leader, so that
  member can lead again when it returns (unless unclean election picks an out-of-sync one);
- a leader is chosen by ``election``'s rules, walking the assignment in order.
"""

from __future__ import annotations

from klamm.broker.cluster.model import NO_LEADER, LeaderIsr
from klamm.protocol.cluster_api import AlterPartitionItem
from klamm.protocol.errors import ErrorCode

from . import election
from .context import TP, ControllerContext, StateChange


def new_topic_states(ctx: ControllerContext, topic: str) -> list[StateChange]:
    """Initial state of every partition of a new topic: the first live replica leads, the
    live replicas are the ISR (a partition with no live replica starts offline)."""
    out = []
    for partition, replicas in sorted(ctx.topics[topic].replicas.items()):
        tp = (topic, partition)
        if tp in ctx.states:
            continue
        live = [b for b in replicas if b in ctx.live]
        if live:
            state = LeaderIsr(live[0], 0, tuple(live), ctx.epoch)
        else:
            state = LeaderIsr(NO_LEADER, 0, tuple(replicas), ctx.epoch)
        out.append(StateChange(tp, None, state, "new partition"))
    return out


def _offline_election(ctx: ControllerContext, tp: TP, state: LeaderIsr,
                      reason: str) -> StateChange | None:
    replicas = ctx.replicas(tp)
    live = [b for b in replicas if b in ctx.live and b not in ctx.shutting_down] or \
        [b for b in replicas if b in ctx.live]
    allowed = tp[0] in ctx.unclean_topics
    chosen = election.offline_partition(replicas, state.isr, live, allowed)
    if chosen.leader is None:
        if state.leader == NO_LEADER:
            return None
        return StateChange(tp, state, state.with_leader(NO_LEADER, state.isr, ctx.epoch),
                           f"{reason}: no live in-sync replica")
    if chosen.unclean:
        reason = f"{reason}; unclean.leader.election.enable=true"
    return StateChange(tp, state, state.with_leader(chosen.leader, chosen.isr, ctx.epoch),
                       reason, unclean=chosen.unclean)


def brokers_failed(ctx: ControllerContext, dead: set[int]) -> list[StateChange]:
    """``dead`` left ``ctx.live``: partitions they led get a new leader, and they leave the
    ISR of partitions led elsewhere."""
    out = []
    for tp in list(ctx.partitions()):
        state = ctx.states.get(tp)
        if state is None:
            continue
        if state.leader in dead or (state.leader != NO_LEADER and state.leader not in ctx.live):
            change = _offline_election(ctx, tp, state, f"leader {state.leader} died")
            if change is not None:
                out.append(change)
        elif state.leader != NO_LEADER and dead.intersection(state.isr):
            isr = [b for b in state.isr if b not in dead]
            out.append(StateChange(tp, state, state.with_isr(isr, ctx.epoch),
                                   f"replica(s) {sorted(dead.intersection(state.isr))} died"))
    return out


def elect_offline(ctx: ControllerContext, tps: list[TP] | None = None) -> list[StateChange]:
    """Leaders for partitions without a live one, where a replica is now eligible."""
    out = []
    for tp in (ctx.offline() if tps is None else tps):
        state = ctx.states.get(tp)
        if state is None or ctx.is_online(tp):
            continue
        change = _offline_election(ctx, tp, state, "offline partition")
        if change is not None and change.new.leader != NO_LEADER:
            out.append(change)
    return out


def controlled_shutdown(ctx: ControllerContext, broker: int) -> tuple[list[StateChange],
                                                                       list[TP]]:
    """``broker`` is in ``ctx.shutting_down``: move the leaderships it holds to other ISR
    members and take it out of the ISR elsewhere. Also returns the partitions it must keep
    leading (no other live ISR member)."""
    changes: list[StateChange] = []
    remaining: list[TP] = []
    for tp in ctx.partitions_on(broker):
        state = ctx.states.get(tp)
        if state is None:
            continue
        if state.leader == broker:
            chosen = election.controlled_shutdown(ctx.replicas(tp), state.isr, ctx.live,
                                                  ctx.shutting_down)
            if chosen.leader is None:
                remaining.append(tp)
            else:
                changes.append(StateChange(
                    tp, state, state.with_leader(chosen.leader, chosen.isr, ctx.epoch),
                    f"controlled shutdown of broker {broker}"))
        elif broker in state.isr and len(state.isr) > 1 and ctx.is_online(tp):
            isr = [b for b in state.isr if b != broker]
            changes.append(StateChange(tp, state, state.with_isr(isr, ctx.epoch),
                                       f"controlled shutdown of broker {broker}"))
    return changes, remaining


def preferred_elections(ctx: ControllerContext, imbalance_ratio: float = 0.0,
                        tps: list[TP] | None = None) -> list[StateChange]:
    """Move leadership back to preferred replicas. With ``tps`` None, only for brokers whose
    share of partitions they prefer but do not lead exceeds ``imbalance_ratio``."""
    if tps is None:
        preferred: dict[int, list[TP]] = {}
        for tp in ctx.partitions():
            replicas = ctx.replicas(tp)
            if replicas:
                preferred.setdefault(replicas[0], []).append(tp)
        tps = []
        for broker, owned in preferred.items():
            if broker not in ctx.live or broker in ctx.shutting_down:
                continue
            elsewhere = [tp for tp in owned if tp in ctx.states
                         and ctx.states[tp].leader != broker]
            if elsewhere and len(elsewhere) / len(owned) > imbalance_ratio:
                tps.extend(elsewhere)
    out = []
    live = [b for b in ctx.live if b not in ctx.shutting_down]
    for tp in tps:
        state = ctx.states.get(tp)
        replicas = ctx.replicas(tp)
        if state is None or not replicas or state.leader == replicas[0]:
            continue
        chosen = election.preferred_replica(replicas, state.isr, live)
        if chosen.leader is not None:
            out.append(StateChange(tp, state,
                                   state.with_leader(chosen.leader, chosen.isr, ctx.epoch),
                                   "preferred replica election"))
    return out


ElectionOutcome = tuple[ErrorCode, str]


def requested_elections(ctx: ControllerContext, unclean: bool, tps: list[TP] | None
                        ) -> tuple[list[StateChange], dict[TP, ElectionOutcome]]:
    """An operator's ElectLeaders (Kafka's KIP-460): preferred elections move each partition
    to its first replica if that one is live and in sync; unclean ones give a partition with
    no live leader the first live replica, in sync or not (committed records may be lost:
    the operator asked for availability). ``tps`` None means every partition, and then only
    those needing an election get an outcome. Returns the changes to write and an outcome
    for every other partition (ELECTION_NOT_NEEDED, or why none is possible)."""
    every = tps is None
    wanted = list(ctx.partitions()) if tps is None else list(dict.fromkeys(tps))
    live = [b for b in ctx.live if b not in ctx.shutting_down]
    changes: list[StateChange] = []
    outcomes: dict[TP, ElectionOutcome] = {}
    for tp in wanted:
        name = f"{tp[0]}-{tp[1]}"
        state = ctx.states.get(tp)
        replicas = ctx.replicas(tp)
        if state is None or not replicas or tp[0] in ctx.deleting:
            outcomes[tp] = (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"{name} does not exist")
            continue
        if unclean:
            if ctx.is_online(tp):
                if not every:
                    outcomes[tp] = (ErrorCode.ELECTION_NOT_NEEDED,
                                    f"{name} is led by live broker {state.leader}")
                continue
            chosen = election.offline_partition(replicas, state.isr, live, True)
            if chosen.leader is None:
                outcomes[tp] = (ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE,
                                f"no replica of {name} ({replicas}) is live")
                continue
            changes.append(StateChange(tp, state, state.with_leader(chosen.leader,
                                                                    chosen.isr, ctx.epoch),
                                       "asked for with ElectLeaders", unclean=chosen.unclean))
            continue
        if state.leader == replicas[0]:
            if not every:
                outcomes[tp] = (ErrorCode.ELECTION_NOT_NEEDED,
                                f"{name} is led by its preferred replica {replicas[0]}")
            continue
        chosen = election.preferred_replica(replicas, state.isr, live)
        if chosen.leader is None:
            why = "not live" if replicas[0] not in live else f"not in the ISR {list(state.isr)}"
            outcomes[tp] = (ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE,
                            f"{name}'s preferred replica {replicas[0]} is {why}")
            continue
        changes.append(StateChange(tp, state, state.with_leader(chosen.leader, chosen.isr,
                                                                ctx.epoch),
                                   "preferred replica election asked for"))
    return changes, outcomes


def alter_partition(ctx: ControllerContext, broker: int, broker_epoch: int,
                    item: AlterPartitionItem) -> tuple[ErrorCode, str, StateChange | None]:
    """Judge a leader's ISR change; the change is None when refused or already in place."""
    tp = (item.topic, item.partition)
    name = f"{item.topic}-{item.partition}"
    registered = ctx.live.get(broker)
    if registered is None or registered.epoch != broker_epoch:
        return (ErrorCode.STALE_BROKER_EPOCH,
                f"broker {broker} epoch {broker_epoch} is not the registered one", None)
    state = ctx.states.get(tp)
    if state is None or item.topic in ctx.deleting:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"{name} does not exist", None
    if item.leader_epoch < state.leader_epoch:
        return (ErrorCode.FENCED_LEADER_EPOCH,
                f"{name}: leader epoch {item.leader_epoch} < {state.leader_epoch}", None)
    if state.leader != broker or item.leader_epoch > state.leader_epoch:
        return (ErrorCode.NOT_LEADER_OR_FOLLOWER,
                f"{name} is led by {state.leader} in epoch {state.leader_epoch}", None)
    if item.partition_epoch != state.partition_epoch:
        return (ErrorCode.INVALID_UPDATE_VERSION,
                f"{name}: partition epoch {item.partition_epoch} is not the current "
                f"{state.partition_epoch}", None)
    replicas = ctx.replicas(tp)
    isr = list(dict.fromkeys(item.new_isr))
    if broker not in isr or any(b not in replicas for b in isr):
        return (ErrorCode.INVALID_REQUEST,
                f"{name}: ISR {item.new_isr} must hold the leader and only replicas "
                f"{replicas}", None)
    added = [b for b in isr if b not in state.isr]
    ineligible = [b for b in added if b not in ctx.live or b in ctx.shutting_down]
    if ineligible:
        return (ErrorCode.INELIGIBLE_REPLICA,
                f"{name}: replica(s) {ineligible} are not live or are shutting down", None)
    if tuple(isr) == state.isr:
        return ErrorCode.NONE, "", None
    return ErrorCode.NONE, "", StateChange(tp, state, state.with_isr(isr, ctx.epoch),
                                           f"ISR change by leader {broker}")
