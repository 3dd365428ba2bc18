"""``meta.properties``: which broker and cluster a log directory belongs to.

Starting broker 2 on broker 1's directory would silently mix two replicas' data, so a
mismatch refuses to start, naming both ids.
"""

from __future__ import annotations

import os
import uuid

from .log.files import write_atomic

FILE_NAME = "meta.properties"


class LogDirMismatch(RuntimeError):
    pass


def ensure_meta_properties(log_dir: str, broker_id: int) -> str:
    """Create or check ``meta.properties``; returns the cluster id."""
    path = os.path.join(log_dir, FILE_NAME)
    props: dict[str, str] = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if "=" in line and not line.startswith("#"):
                    k, v = line.strip().split("=", 1)
                    props[k] = v
        stored = props.get("broker.id")
        if stored is not None and int(stored) != broker_id:
            raise LogDirMismatch(
                f"log dir {log_dir} belongs to broker.id={stored}, not broker.id={broker_id}; "
                f"use another log.dir or the matching broker.id")
        if "cluster.id" in props:
            return props["cluster.id"]
    cluster_id = props.get("cluster.id") or uuid.uuid4().hex[:22]
    text = f"version=1\nbroker.id={broker_id}\ncluster.id={cluster_id}\n"
    write_atomic(path, text.encode())
    return cluster_id
