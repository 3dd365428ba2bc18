"""OutageLog: an unreachable peer is reported when the outage starts, every repeat interval
while it lasts, and when it ends; not once per retry."""

from __future__ import annotations

from klamm.client.outage_log import OutageLog


def test_a_thousand_failed_retries_make_a_handful_of_lines() -> None:
    outages = OutageLog(repeat_s=30)
    lines = []
    now = 0.0
    for _ in range(1200):  # 120 s of retries every 100 ms
        line = outages.failed("broker 1 (127.0.0.1:9092)", "connection refused", now, 100)
        if line:
            lines.append(line)
        now += 0.1
    assert lines[0] == "broker 1 (127.0.0.1:9092): connection refused; retrying every 100 ms"
    assert len(lines) == 4  # the start, then after 30, 60 and 90 s
    assert lines[1].startswith("broker 1 (127.0.0.1:9092): still failing after 30 s and 301 "
                               "attempts")
    assert outages.failing("broker 1 (127.0.0.1:9092)")
    back = outages.succeeded("broker 1 (127.0.0.1:9092)", now)
    assert back == "broker 1 (127.0.0.1:9092): reachable again after 120.0 s (1200 failed " \
                   "attempt(s))"
    assert outages.succeeded("broker 1 (127.0.0.1:9092)", now) is None
    assert not outages.failing("broker 1 (127.0.0.1:9092)")


def test_peers_are_tracked_apart() -> None:
    outages = OutageLog(repeat_s=30)
    assert outages.failed("a", "x", 0, 100) is not None
    assert outages.failed("b", "y", 1, 100) is not None
    assert outages.failed("a", "x", 2, 100) is None
    assert outages.succeeded("b", 3) is not None
    assert outages.failing("a") and not outages.failing("b")
