"""The async consumer (manual assignment now; consumer groups slot in later)."""

from .config import ConsumerConfig
from .consumer import (Consumer, ConsumerStoppedError, ConsumerWakeup, GroupsNotAvailableError,
                       NoOffsetForPartitionError)
from .records import RecordDeserializationError

__all__ = ["Consumer", "ConsumerConfig", "ConsumerStoppedError", "ConsumerWakeup",
           "GroupsNotAvailableError", "NoOffsetForPartitionError", "RecordDeserializationError"]
