"""Topic metadata of a single-node broker, kept in one JSON file in the log directory.

The cluster issue replaces this with the coordination service; until then it is the source of
truth for which topics exist, their partition counts and config overrides. Writes are atomic
(temp file, fsync, rename, directory fsync), so a crash leaves the old or the new version.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from .log.files import write_atomic

FILE_NAME = "topics.json"


@dataclass(slots=True)
class TopicRecord:
    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, Any] = field(default_factory=dict)
    topic_id: str = field(default_factory=lambda: uuid.uuid4().hex)


class LocalTopicStore:
    """Not thread-safe: owned by the broker's event loop."""

    def __init__(self, log_dir: str) -> None:
        self.path = os.path.join(log_dir, FILE_NAME)
        self.topics: dict[str, TopicRecord] = {}

    def load(self) -> dict[str, TopicRecord]:
        try:
            with open(self.path, "rb") as fh:
                raw = json.load(fh)
        except FileNotFoundError:
            raw = {"topics": []}
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot read topic metadata {self.path}: {exc}") from None
        self.topics = {t["name"]: TopicRecord(**t) for t in raw.get("topics", [])}
        return self.topics

    def put(self, record: TopicRecord) -> None:
        self.topics[record.name] = record
        self._save()

    def remove(self, name: str) -> None:
        if self.topics.pop(name, None) is not None:
            self._save()

    def _save(self) -> None:
        body = {"version": 1, "topics": [asdict(t) for t in self.topics.values()]}
        write_atomic(self.path, json.dumps(body, indent=1, sort_keys=True).encode())
