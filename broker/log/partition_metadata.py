"""``partition.metadata``: the id of the topic a partition directory belongs to.

Directories are named ``<topic>-<partition>``, so a topic deleted and created again under the
same name would otherwise meet the old one's log on a broker that missed the deletion. The
file (Kafka's format: ``version: 0`` and ``topic_id: <id>`` lines) is written when a replica is
first hosted; a LeaderAndIsr naming another id marks the directory as a stray to replace.
"""

from __future__ import annotations

import os

from .files import write_atomic
from .sync_batch import SyncBatch

FILE_NAME = "partition.metadata"


def read_topic_id(partition_dir: str) -> str | None:
    try:
        with open(os.path.join(partition_dir, FILE_NAME), encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "topic_id":
                    return value.strip() or None
    except FileNotFoundError:
        return None
    return None


def write_topic_id(partition_dir: str, topic_id: str, sync: SyncBatch | None = None) -> None:
    """Durable at once, or once ``sync`` commits."""
    path = os.path.join(partition_dir, FILE_NAME)
    data = f"version: 0\ntopic_id: {topic_id}\n".encode()
    if sync is None:
        write_atomic(path, data)
    else:
        sync.replace(path, data)
