import pytest

from klamm.client.producer import ProducerConfig
from klamm.protocol.config import ConfigError


def test_kafka_and_python_names_and_acks_all() -> None:
    cfg = ProducerConfig.build({"linger.ms": 1, "acks": "all", "bootstrap.servers": "h:1,k:2"})
    assert cfg.linger_ms == 1 and cfg.acks == -1
    assert cfg.bootstrap_servers == [("h", 1), ("k", 2)]
    assert ProducerConfig.build(batch_size=10, acks=0).batch_size == 10


def test_unknown_and_bad_keys_are_named() -> None:
    with pytest.raises(ConfigError, match="linger.msec"):
        ProducerConfig.build({"linger.msec": 5})
    with pytest.raises(ConfigError, match="acks"):
        ProducerConfig.build(acks=2)
    with pytest.raises(ConfigError, match="compression.type"):
        ProducerConfig.build(compression_type="snappy")
    with pytest.raises(ConfigError, match="bootstrap.servers"):
        ProducerConfig.build(bootstrap_servers="nohostport")
