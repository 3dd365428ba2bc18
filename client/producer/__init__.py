from .accumulator import RecordFuture
from .config import ProducerConfig
from .producer import Producer

__all__ = ["Producer", "ProducerConfig", "RecordFuture"]
