import pytest
from pydantic import Field

from klamm.protocol.config import ConfigError, KlammConfig


class Sample(KlammConfig):
    linger_ms: int = Field(5, ge=0)
    batch_size: int = 16384


def test_dotted_and_python_names_reach_the_same_field() -> None:
    assert Sample.build({"linger.ms": 3}).linger_ms == 3
    assert Sample.build(linger_ms=4).linger_ms == 4


def test_unknown_key_is_named_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"'linger\.mz'.*did you mean 'linger\.ms'"):
        Sample.build({"linger.mz": 1})


def test_bad_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"linger\.ms"):
        Sample.build({"linger.ms": -1})


def test_same_key_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="twice"):
        Sample.build({"linger.ms": 1, "linger_ms": 2})
