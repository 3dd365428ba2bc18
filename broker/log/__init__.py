"""The broker's storage layer: partitions as segment files, Kafka's on-disk design.

One module per on-disk concept: ``offset_index`` and ``time_index`` (sparse indexes),
``segment`` (one ``.log`` + indexes), ``segments`` (ordered by base offset),
``checkpoints`` (broker-wide offset files, clean-shutdown marker), ``leader_epoch``,
``loader`` (recovery), ``retention`` (pure deletion rules), ``partition_log`` (one replica),
``manager`` (all logs of a broker) and ``cleaner`` (compaction).
"""

from klamm.protocol.records import CorruptBatch

from .errors import LogStorageError, OffsetOutOfRange, RecordTooLarge, UnexpectedAppendOffset
from .leader_epoch import LeaderEpochCache
from .manager import LogManager
from .partition_log import PartitionLog
from .results import AppendInfo, FetchData, FileRegion

__all__ = [
    "AppendInfo",
    "CorruptBatch",
    "FetchData",
    "FileRegion",
    "LeaderEpochCache",
    "LogManager",
    "LogStorageError",
    "OffsetOutOfRange",
    "PartitionLog",
    "RecordTooLarge",
    "UnexpectedAppendOffset",
]
