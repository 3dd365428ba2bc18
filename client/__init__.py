"""Klamm's async clients: ``Producer``, ``Consumer``, ``Admin``."""

from . import errors
from .admin import Admin, AdminConfig, ConfigEntry, TopicDescription
from .consumer import (Consumer, ConsumerConfig, ConsumerStoppedError, ConsumerWakeup,
                       GroupsNotAvailableError, NoOffsetForPartitionError,
                       RecordDeserializationError)
from .producer import Producer, ProducerConfig, RecordFuture
from .producer.partitioner import partition_for_key
from .serializers import SerializationError
from .structs import (ConsumerRecord, NewTopic, OffsetAndMetadata, OffsetAndTimestamp,
                      RecordMetadata, TopicPartition)


__all__ = ["Admin", "AdminConfig", "ConfigEntry", "Consumer", "ConsumerConfig", "ConsumerRecord",
           "ConsumerStoppedError", "ConsumerWakeup", "GroupsNotAvailableError", "NewTopic",
           "NoOffsetForPartitionError", "OffsetAndMetadata", "OffsetAndTimestamp", "Producer",
           "ProducerConfig", "RecordDeserializationError", "RecordFuture", "RecordMetadata",
           "SerializationError", "TopicDescription", "TopicPartition", "errors",
           "partition_for_key"]
