"""``meta.properties``: which broker and cluster a log directory belongs to.

Starting broker 2 on broker 1's directory, or a broker of cluster A on a directory of cluster
B, would silently mix replicas' data; either mismatch refuses to start with one line naming
both sides. The cluster id itself lives in the coordination service; a directory created
before there was one (a single-node data dir, ``version=1``) hands its id over on first start.
A directory that has joined a coordination service (``version=2``) never does: meeting a
service that holds no cluster id (a new chroot, a wiped service) it refuses, as Kafka does,
instead of founding a second cluster on the first one's replicas.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from .log.files import write_atomic

FILE_NAME = "meta.properties"


class LogDirMismatch(RuntimeError):
    pass


JOINED_VERSION = 2


class MetaProperties(NamedTuple):
    broker_id: int | None
    cluster_id: str | None
    version: int = 0

    @property
    def joined(self) -> bool:
        """True once this directory has been part of a cluster on a coordination service."""
        return self.version >= JOINED_VERSION


def read_meta_properties(log_dir: str) -> MetaProperties:
    path = os.path.join(log_dir, FILE_NAME)
    props: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if "=" in line and not line.startswith("#"):
                    k, v = line.strip().split("=", 1)
                    props[k] = v
    except FileNotFoundError:
        return MetaProperties(None, None)
    broker = props.get("broker.id")
    version = props.get("version", "")
    return MetaProperties(int(broker) if broker is not None and broker.isdigit() else None,
                          props.get("cluster.id") or None,
                          int(version) if version.isdigit() else 0)


def check_broker_id(log_dir: str, broker_id: int) -> MetaProperties:
    stored = read_meta_properties(log_dir)
    if stored.broker_id is not None and stored.broker_id != broker_id:
        raise LogDirMismatch(
            f"log dir {log_dir} belongs to broker.id={stored.broker_id}, not "
            f"broker.id={broker_id}; use another log.dir or the matching broker.id")
    return stored


def check_cluster_id(log_dir: str, stored: MetaProperties, cluster_id: str | None,
                     coordination: str) -> None:
    """``cluster_id`` is what the coordination service holds (None: nothing yet)."""
    if cluster_id is None:
        if stored.joined and stored.cluster_id is not None:
            raise LogDirMismatch(
                f"log dir {log_dir} belongs to cluster {stored.cluster_id}, but the coordination "
                f"service at {coordination} holds no cluster id (a new chroot, or wiped data?); "
                f"point zookeeper.connect at the cluster's own coordination service (and "
                f"chroot), or use an empty log dir")
        return
    if stored.cluster_id is not None and stored.cluster_id != cluster_id:
        raise LogDirMismatch(
            f"log dir {log_dir} belongs to cluster {stored.cluster_id}, but the coordination "
            f"service at {coordination} holds cluster {cluster_id}; point zookeeper.connect "
            f"at the cluster's own coordination service (and chroot), or use an empty log dir")


def write_meta_properties(log_dir: str, broker_id: int, cluster_id: str) -> None:
    text = f"version={JOINED_VERSION}\nbroker.id={broker_id}\ncluster.id={cluster_id}\n"
    write_atomic(os.path.join(log_dir, FILE_NAME), text.encode())
