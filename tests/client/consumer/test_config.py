"""ConsumerConfig: Kafka's names and defaults, clear rejections."""

import pytest

from klamm.client.consumer import ConsumerConfig
from klamm.protocol.config import ConfigError


def test_defaults_follow_kafka() -> None:
    cfg = ConsumerConfig.build()
    assert (cfg.fetch_min_bytes, cfg.fetch_max_wait_ms, cfg.fetch_max_bytes,
            cfg.max_partition_fetch_bytes, cfg.max_poll_records, cfg.auto_offset_reset,
            cfg.check_crcs, cfg.group_id) == (1, 500, 50 * 1024 * 1024, 1024 * 1024, 500,
                                              "latest", True, None)


def test_dotted_and_python_names_reach_the_same_field() -> None:
    cfg = ConsumerConfig.build({"fetch.max.wait.ms": 20, "auto.offset.reset": "earliest"},
                               max_poll_records=7, bootstrap_servers="h:1,k:2")
    assert (cfg.fetch_max_wait_ms, cfg.auto_offset_reset, cfg.max_poll_records) == (
        20, "earliest", 7)
    assert cfg.bootstrap_servers == [("h", 1), ("k", 2)]


def test_unknown_keys_are_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"'fetch\.max\.wait' \(did you mean 'fetch\.max"):
        ConsumerConfig.build({"fetch.max.wait": 1})


@pytest.mark.parametrize("values, key", [
    ({"auto.offset.reset": "smallest"}, "auto.offset.reset"),
    ({"max.poll.records": 0}, "max.poll.records"),
    ({"value.deserializer": "yaml"}, "value.deserializer"),
    ({"session.timeout.ms": 1000, "heartbeat.interval.ms": 1000}, "heartbeat.interval.ms"),
])
def test_bad_values_are_rejected_naming_the_key(values: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        ConsumerConfig.build(values)


@pytest.mark.parametrize("key", ["group.id", "group.instance.id", "metadata.max.age.ms",
                                 "connections.max.idle.ms"])
def test_settings_that_do_nothing_yet_are_refused_naming_the_key(key: str) -> None:
    value = "g" if key.startswith("group") else 1000
    with pytest.raises(ConfigError, match=key.replace(".", r"\.") + ": (consumer groups|not "
                       "implemented)"):
        ConsumerConfig.build({key: value})


@pytest.mark.parametrize("key, value", [("enable.auto.commit", False),
                                        ("auto.commit.interval.ms", 1000),
                                        ("max.poll.interval.ms", 1000)])
def test_group_settings_other_than_their_defaults_are_refused(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.") + ": has no effect"):
        ConsumerConfig.build({key: value})
