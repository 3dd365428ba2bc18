"""Klamm's async clients: ``Producer``, ``Consumer``, ``Admin``."""

from . import errors
from .admin import Admin, AdminConfig, ConfigEntry, TopicDescription
from .consumer import Consumer, ConsumerConfig, ConsumerStoppedError, ConsumerWakeup
from .producer import Producer, ProducerConfig, RecordFuture
from .serializers import SerializationError
from .structs import ConsumerRecord, NewTopic, OffsetAndMetadata, RecordMetadata, TopicPartition


__all__ = ["Admin", "AdminConfig", "ConfigEntry", "Consumer", "ConsumerConfig", "ConsumerRecord",
           "ConsumerStoppedError", "ConsumerWakeup", "NewTopic", "OffsetAndMetadata", "Producer",
           "ProducerConfig", "RecordFuture", "RecordMetadata", "SerializationError",
           "TopicDescription", "TopicPartition", "errors"]
