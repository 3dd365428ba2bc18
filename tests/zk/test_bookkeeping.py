"""Pure bookkeeping: session deadlines, watch registrations, configuration."""

from __future__ import annotations

import pytest

from klamm.protocol.config import ConfigError
from klamm.zk.config import ZkConfig
from klamm.zk.sessions import SessionTracker
from klamm.zk.tree import WatchEvent
from klamm.zk.watches import CHILD, DATA, WatchManager


def test_session_expires_one_timeout_after_it_was_last_heard_from() -> None:
    tracker = SessionTracker(100, 10000)
    tracker.add(1, 500, now=0.0)
    assert tracker.expired(0.49) == []
    assert tracker.touch(1, now=0.4)
    assert tracker.expired(0.89) == []
    assert tracker.expired(0.9) == [1]
    assert tracker.expired(5.0) == []  # reported once
    assert not tracker.alive(1) and not tracker.touch(1, now=1.0)


def test_requested_timeouts_are_clamped() -> None:
    tracker = SessionTracker(200, 3000)
    assert [tracker.negotiate(t) for t in (10, 1000, 99999)] == [200, 1000, 3000]


def test_a_watch_fires_once_for_each_session_that_set_it() -> None:
    watches = WatchManager()
    watches.add(DATA, "/a", 1)
    watches.add(DATA, "/a", 1)
    watches.add(DATA, "/a", 2)
    watches.add(CHILD, "/", 1)
    fired = watches.trigger([WatchEvent("changed", "/a"), WatchEvent("changed", "/a")])
    assert fired == [(1, WatchEvent("changed", "/a")), (2, WatchEvent("changed", "/a"))]
    assert watches.trigger([WatchEvent("child", "/")]) == [(1, WatchEvent("child", "/"))]
    assert watches.count() == 0


def test_deletion_fires_data_and_child_watches_but_once_per_session() -> None:
    watches = WatchManager()
    watches.add(DATA, "/a", 1)
    watches.add(CHILD, "/a", 1)
    watches.add(CHILD, "/a", 3)
    assert watches.trigger([WatchEvent("deleted", "/a")]) == [
        (1, WatchEvent("deleted", "/a")), (3, WatchEvent("deleted", "/a"))]


def test_removing_a_session_drops_its_watches_only() -> None:
    watches = WatchManager()
    watches.add(DATA, "/a", 1)
    watches.add(DATA, "/a", 2)
    watches.remove_session(1)
    assert watches.trigger([WatchEvent("changed", "/a")]) == [(2, WatchEvent("changed", "/a"))]


def test_config_accepts_dotted_names_and_rejects_contradictions() -> None:
    config = ZkConfig.build({"max.node.bytes": 10, "data.dir": "d"})
    assert config.max_node_bytes == 10 and config.data_dir == "d"
    with pytest.raises(ConfigError, match="min.session.timeout.ms"):
        ZkConfig.build({"min.session.timeout.ms": 5000, "max.session.timeout.ms": 1000})
    with pytest.raises(ConfigError, match="max.node.byte"):
        ZkConfig.build({"max.node.byte": 1})
