"""Upgrading a single-node data dir: its ``topics.json`` moves into the coordination service.

Before brokers shared their metadata, a broker kept its topics (partition counts, config
overrides, topic ids) in ``<log dir>/topics.json``. On the first start against a coordination
service, every topic there that the cluster does not know yet is created with this broker as
its only replica, keeping its topic id, so the logs on disk are served as they were; the file
is then renamed ``topics.json.imported``. Nothing a user stored is lost by upgrading.
"""

from __future__ import annotations

import json
import logging
import os

from klamm.zk.errors import NodeExistsError

from .model import TopicAssignment
from .store import ClusterStore

log = logging.getLogger(__name__)

FILE_NAME = "topics.json"


async def import_local_topics(log_dir: str, store: ClusterStore, broker_id: int) -> int:
    """Import ``topics.json`` if present; returns how many topics were created."""
    path = os.path.join(log_dir, FILE_NAME)
    try:
        with open(path, "rb") as fh:
            raw = json.load(fh)
    except FileNotFoundError:
        return 0
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"cannot read the topic list {path} to import it: {exc}; fix or "
                           f"move the file") from None
    created = 0
    for t in raw.get("topics", []):
        name = t["name"]
        assignment = TopicAssignment(name, t.get("topic_id") or os.urandom(8).hex(),
                                     {p: [broker_id] for p in range(int(t["partitions"]))})
        try:
            await store.create_topic(assignment, dict(t.get("configs") or {}))
            created += 1
        except NodeExistsError:
            log.info("topic %s from %s already exists in the cluster; kept as it is", name, path)
    os.replace(path, path + ".imported")
    log.info("imported %d topic(s) from %s into the cluster metadata (the file is now %s)",
             created, path, FILE_NAME + ".imported")
    return created
