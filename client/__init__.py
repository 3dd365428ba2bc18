"""Klamm's async clients: ``Producer``, ``Consumer``, ``Admin``.

Names are imported on first use (PEP 562), so a program that needs only the Admin client
(``klamm topics list``) does not load the producer and consumer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import errors
    from .admin import Admin, AdminConfig, ConfigEntry, TopicDescription
    from .consumer import (Consumer, ConsumerConfig, ConsumerStoppedError, ConsumerWakeup,
                           GroupsNotAvailableError, NoOffsetForPartitionError,
                           RecordDeserializationError)
    from .producer import Producer, ProducerConfig, RecordFuture
    from .producer.partitioner import partition_for_key
    from .serializers import SerializationError
    from .structs import (ConsumerRecord, NewPartitions, NewTopic, OffsetAndMetadata,
                          OffsetAndTimestamp, RecordMetadata, TopicPartition)

_WHERE = {
    "Admin": "admin", "AdminConfig": "admin", "ConfigEntry": "admin",
    "TopicDescription": "admin",
    "Consumer": "consumer", "ConsumerConfig": "consumer", "ConsumerStoppedError": "consumer",
    "ConsumerWakeup": "consumer", "GroupsNotAvailableError": "consumer",
    "NoOffsetForPartitionError": "consumer", "RecordDeserializationError": "consumer",
    "Producer": "producer", "ProducerConfig": "producer", "RecordFuture": "producer",
    "partition_for_key": "producer.partitioner",
    "SerializationError": "serializers",
    "ConsumerRecord": "structs", "NewPartitions": "structs", "NewTopic": "structs",
    "OffsetAndMetadata": "structs",
    "OffsetAndTimestamp": "structs", "RecordMetadata": "structs", "TopicPartition": "structs",
}


def __getattr__(name: str) -> Any:
    if name == "errors":
        return importlib.import_module(f"{__name__}.errors")
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = ["Admin", "AdminConfig", "ConfigEntry", "Consumer", "ConsumerConfig", "ConsumerRecord",
           "ConsumerStoppedError", "ConsumerWakeup", "GroupsNotAvailableError", "NewPartitions",
           "NewTopic", "NoOffsetForPartitionError", "OffsetAndMetadata", "OffsetAndTimestamp",
           "Producer", "ProducerConfig", "RecordDeserializationError", "RecordFuture",
           "RecordMetadata", "SerializationError", "TopicDescription", "TopicPartition", "errors",
           "partition_for_key"]
assert sorted(__all__) == sorted([*_WHERE, "errors"])
