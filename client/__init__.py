"""Klamm's async clients: ``Producer``, ``Consumer``, ``Admin``."""

from . import errors
from .admin import Admin, AdminConfig, ConfigEntry, TopicDescription
from .producer import Producer, ProducerConfig, RecordFuture
from .serializers import SerializationError
from .structs import ConsumerRecord, NewTopic, OffsetAndMetadata, RecordMetadata, TopicPartition


def __getattr__(name: str) -> object:
    # The consumer package is imported on first use so the producer works without it loaded.
    if name in ("Consumer", "ConsumerConfig", "ConsumerWakeup", "ConsumerStoppedError"):
        from . import consumer
        return getattr(consumer, name)
    raise AttributeError(name)


__all__ = ["Admin", "AdminConfig", "ConfigEntry", "Consumer", "ConsumerConfig", "ConsumerRecord",
           "ConsumerStoppedError", "ConsumerWakeup", "NewTopic", "OffsetAndMetadata", "Producer",
           "ProducerConfig", "RecordFuture", "RecordMetadata", "SerializationError",
           "TopicDescription", "TopicPartition", "errors"]
