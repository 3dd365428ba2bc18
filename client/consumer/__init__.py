from .config import ConsumerConfig
from .consumer import Consumer, ConsumerStoppedError, ConsumerWakeup, GroupsNotAvailableError

__all__ = ["Consumer", "ConsumerConfig", "ConsumerStoppedError", "ConsumerWakeup",
           "GroupsNotAvailableError"]
