"""Request bodies of the wrong shape or size: each is answered INVALID_REQUEST naming the
field, logged in one rate-limited line (never a traceback), and costs the broker no more work
than its caps allow; the connection goes on."""

from __future__ import annotations

import logging
import math
from typing import Any

import pytest

from klamm.broker.apis import fields
from klamm.broker.apis.metadata import MAX_AUTO_CREATE
from klamm.broker.server import BrokerServer
from klamm.protocol.api import ApiKey
from klamm.protocol.errors import ErrorCode
from tests.support.polling import until
from tests.support.raw import RawConnection, batch, create_topic, fetch_body, produce_body

ONE = batch([b"v"])


def _fetch_with(**partition: Any) -> dict[str, Any]:
    body = fetch_body("t", 0, 0)
    body["topics"][0]["partitions"][0].update(partition)
    return body


# (api, body, payload, the words the answer must contain)
MALFORMED = {
    "infinite timeout": (ApiKey.PRODUCE, {**produce_body("t", 0, len(ONE)),
                                          "timeout_ms": math.inf}, ONE, "'timeout_ms'"),
    "float partition": (ApiKey.FETCH, _fetch_with(partition=1e300), b"", "'partition'"),
    "bool offset": (ApiKey.FETCH, _fetch_with(fetch_offset=True), b"", "'fetch_offset'"),
    "unhashable topic": (ApiKey.FETCH, {**fetch_body("t", 0, 0), "topics": [
        {"topic": {"a": 1}, "partitions": [{"partition": 0, "fetch_offset": 0,
                                            "partition_max_bytes": 100}]}]}, b"", "'topic'"),
    "negative size": (ApiKey.PRODUCE, {"acks": 1, "topics": [
        {"topic": "t", "partitions": [{"partition": 0, "size": -1}]}]}, b"", "'size'"),
    "offsets timestamp nan": (ApiKey.LIST_OFFSETS, {"topics": [
        {"topic": "t", "partitions": [{"partition": 0, "timestamp": math.nan}]}]}, b"",
        "'timestamp'"),
    "metadata topics a string": (ApiKey.METADATA, {"topics": "t" * 1000}, b"", "'topics'"),
    "delete topics a string": (ApiKey.DELETE_TOPICS, {"topics": "x" * (1 << 20)}, b"",
                               "'topics'"),
    "huge partition count": (ApiKey.CREATE_TOPICS, {"topics": [
        {"topic": "n", "num_partitions": 10**9, "replication_factor": 1}]}, b"",
        "'num_partitions'"),
    "configs not a map": (ApiKey.ALTER_CONFIGS, {"resources": [
        {"type": "topic", "name": "t", "configs": ["retention.ms"]}]}, b"", "'configs'"),
    "body not a map": (ApiKey.PRODUCE, 7, b"", "must be a map"),
}


async def test_malformed_fields_are_answered_and_logged_once(
        broker: BrokerServer, caplog: pytest.LogCaptureFixture) -> None:
    """Before, int(inf) and unhashable names logged a full traceback per request, and a
    float partition number crashed the connection when the answer echoed it."""
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t")
    with caplog.at_level(logging.INFO, logger="klamm"):
        for case, (api, body, payload, named) in MALFORMED.items():
            r = await conn.call(api, body, payload)
            assert r.body.get("error_code") == ErrorCode.INVALID_REQUEST, (case, r.body)
            assert named in r.body["error_message"], (case, r.body)
        r = await conn.call(ApiKey.METADATA, {"topics": ["t"]})  # the connection goes on
        assert r.body["topics"][0]["error_code"] == 0
    await conn.close()
    broker_lines = [rec for rec in caplog.records if rec.name.startswith("klamm.broker")
                    and rec.levelno >= logging.WARNING]
    assert len(broker_lines) == 1, [rec.getMessage() for rec in broker_lines]
    assert broker_lines[0].getMessage().startswith("invalid ")
    assert "Traceback" not in caplog.text


async def test_entries_are_capped_and_each_is_answered_once(broker: BrokerServer) -> None:
    """Before, METADATA naming one topic 250,000 times answered (and described) it 250,000
    times, and DESCRIBE_CONFIGS of one topic 60,000 times built 60,000 config lists."""
    conn = await RawConnection.open(broker.bootstrap)
    await create_topic(conn, "t")
    r = await conn.call(ApiKey.METADATA, {"topics": ["t"] * fields.MAX_TOPICS})
    assert [t["topic"] for t in r.body["topics"]] == ["t"]
    r = await conn.call(ApiKey.METADATA, {"topics": ["t"] * (fields.MAX_TOPICS + 1)})
    assert r.body["error_code"] == ErrorCode.INVALID_REQUEST
    assert f"at most {fields.MAX_TOPICS}" in r.body["error_message"]
    many = [{"type": "topic", "name": "t"}] * fields.MAX_RESOURCES
    r = await conn.call(ApiKey.DESCRIBE_CONFIGS, {"resources": many})
    assert len(r.body["resources"]) == 1 and r.body["resources"][0]["configs"]
    r = await conn.call(ApiKey.DESCRIBE_CONFIGS, {"resources": many * 60})
    assert r.body["error_code"] == ErrorCode.INVALID_REQUEST
    twice = [{"type": "topic", "name": "t", "configs": {"retention.ms": "1000"}}] * 2
    r = await conn.call(ApiKey.ALTER_CONFIGS, {"resources": twice})
    assert [e["error_code"] for e in r.body["resources"]] == [ErrorCode.INVALID_REQUEST] * 2
    assert "more than once" in r.body["resources"][0]["error_message"]
    body = fetch_body("t", 0, 0)
    body["topics"][0]["partitions"] *= fields.MAX_PARTITIONS + 1
    r = await conn.call(ApiKey.FETCH, body)
    assert r.body["error_code"] == ErrorCode.INVALID_REQUEST
    await conn.close()


async def test_one_metadata_request_auto_creates_a_bounded_number_of_topics(
        broker: BrokerServer) -> None:
    """Before, one METADATA request naming 1,000 missing topics created all of them while
    the broker answered nothing else for 19-24 s."""
    conn = await RawConnection.open(broker.bootstrap)
    names = [f"auto-{i}" for i in range(MAX_AUTO_CREATE + 10)]
    r = await conn.call(ApiKey.METADATA, {"topics": names, "allow_auto_topic_creation": True})
    codes = {t["topic"]: t["error_code"] for t in r.body["topics"]}
    created = [n for n in names if codes[n] in (ErrorCode.NONE, ErrorCode.LEADER_NOT_AVAILABLE)]
    later = [n for n in names if codes[n] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
    assert created == names[:MAX_AUTO_CREATE] and later == names[MAX_AUTO_CREATE:]
    assert "ask again" in r.body["topics"][-1]["error_message"]
    await until(lambda: all(broker.metadata.has_topic(n) for n in created))
    assert not [n for n in later if await broker.admin.exists(n)]
    await conn.close()
