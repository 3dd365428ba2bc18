"""Which cluster and broker a data dir belongs to, and the upgrade of a single-node data dir."""

from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path

import pytest

from klamm.broker.log.partition_metadata import read_topic_id
from klamm.broker.meta_properties import (LogDirMismatch, check_broker_id, check_cluster_id,
                                          read_meta_properties, write_meta_properties)
from klamm.broker.server import BrokerServer
from tests.conftest import make_broker_config
from klamm.protocol.api import ApiKey
from tests.support.raw import RawConnection, batch, create_topic, fetch_records, produce_body


def _legacy(tmp_path: Path, cluster_id: str = "legacyclusterid0000001") -> str:
    d = tmp_path / "legacy"
    d.mkdir()
    (d / "meta.properties").write_text(f"version=1\nbroker.id=0\ncluster.id={cluster_id}\n")
    return str(d)


def test_a_single_node_dir_hands_its_cluster_id_to_an_empty_coordination_service(
        tmp_path: Path) -> None:
    d = _legacy(tmp_path)
    stored = check_broker_id(d, 0)
    assert not stored.joined
    check_cluster_id(d, stored, None, "zk:2181")  # adopted: nothing raised
    write_meta_properties(d, 0, stored.cluster_id or "")
    joined = read_meta_properties(d)
    assert joined.joined and joined.cluster_id == "legacyclusterid0000001"


def test_a_joined_dir_refuses_an_empty_or_a_different_coordination_service(
        tmp_path: Path) -> None:
    d = _legacy(tmp_path)
    write_meta_properties(d, 0, "clusterA")
    stored = read_meta_properties(d)
    with pytest.raises(LogDirMismatch, match="holds no cluster id") as empty:
        check_cluster_id(d, stored, None, "zk:2181/new")
    assert "zk:2181/new" in str(empty.value) and "clusterA" in str(empty.value)
    with pytest.raises(LogDirMismatch, match="holds cluster clusterB"):
        check_cluster_id(d, stored, "clusterB", "zk:2181")
    with pytest.raises(LogDirMismatch, match="belongs to broker.id=0, not broker.id=3"):
        check_broker_id(d, 3)


async def test_upgrading_a_single_node_data_dir_keeps_its_topics_configs_and_records(
        tmp_path: Path) -> None:
    # Write real logs with a broker, then turn its data dir into what a single-node broker
    # left behind before the coordination service held the metadata: topics.json, a
    # version=1 meta.properties, no partition.metadata files, no coordination data.
    d = tmp_path / "data"
    server = BrokerServer(make_broker_config(d))
    await server.start()
    conn = await RawConnection.open(server.bootstrap)
    await create_topic(conn, "orders", partitions=2)
    for p in (0, 1):
        data = batch([b"p%d-%d" % (p, i) for i in range(5)])
        conn.send(ApiKey.PRODUCE, produce_body("orders", p, len(data)), data)
        assert (await conn.receive()).body["topics"][0]["partitions"][0]["error_code"] == 0
    await conn.close()
    topic_id = read_topic_id(str(d / "orders-0"))
    cluster_id = server.cluster_id
    await server.stop()
    shutil.rmtree(d / "zk")
    for f in glob.glob(str(d / "*" / "partition.metadata")):
        os.remove(f)
    (d / "meta.properties").write_text(f"version=1\nbroker.id=0\ncluster.id={cluster_id}\n")
    (d / "topics.json").write_text(json.dumps({"version": 1, "topics": [
        {"name": "orders", "partitions": 2, "replication_factor": 1,
         "configs": {"retention.ms": 3_600_000}, "topic_id": topic_id}]}))

    server = BrokerServer(make_broker_config(d))
    await server.start()
    try:
        assert server.cluster_id == cluster_id
        assert not (d / "topics.json").exists() and (d / "topics.json.imported").exists()
        assert read_meta_properties(str(d)).joined
        for p in (0, 1):
            records = await fetch_records(server.bootstrap, "orders", p)
            assert [(r.offset, r.value) for r in records] == [
                (i, b"p%d-%d" % (p, i)) for i in range(5)]
        assert str((await server.store.topic_configs("orders"))["retention.ms"]) == "3600000"
        assert read_topic_id(str(d / "orders-0")) == topic_id
    finally:
        await server.stop()
