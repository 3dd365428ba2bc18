"""Kafka's names for the address and the data dir: ``listeners``, ``advertised.listeners`` and
``log.dirs`` (before, a server.properties using them was refused as unknown keys). What cannot
work yet is refused naming the key."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from klamm.broker.cli.broker import build_config
from klamm.broker.cli.errors import CliError
from klamm.client import Admin
from tests.support.processes import READY
from tests.zk.processes import ZkProcess

ROOT = Path(__file__).resolve().parents[3]


def test_the_shipped_example_is_accepted_as_it_is() -> None:
    config, _ = build_config(str(ROOT / "config" / "server.properties"), {})
    assert (config.broker_id, config.host, config.port) == (1, "127.0.0.1", 9092)
    assert config.log_dir == "./klamm-data/broker-1"
    assert config.zookeeper_connect == "127.0.0.1:2181/klamm"
    assert (config.default_replication_factor, config.min_insync_replicas) == (3, 2)


def test_listeners_and_log_dirs_map_and_the_command_line_wins(tmp_path: Path) -> None:
    props = tmp_path / "server.properties"
    props.write_text("listeners=PLAINTEXT://:9093\nadvertised.listeners=PLAINTEXT://b1.lan:19093\n"
                     "log.dirs=/var/lib/klamm\n")
    config, _ = build_config(str(props), {})
    assert (config.host, config.port, config.log_dir) == ("0.0.0.0", 9093, "/var/lib/klamm")
    assert (config.advertised_host, config.advertised_port) == ("b1.lan", 19093)
    config, _ = build_config(str(props), {"host": "127.0.0.1", "port": 9999,
                                          "log.dir": "/tmp/other"})
    assert (config.host, config.port, config.log_dir) == ("127.0.0.1", 9999, "/tmp/other")


@pytest.mark.parametrize("line, message", [
    ("listeners=SSL://:9093", "only PLAINTEXT listeners are supported"),
    ("listeners=PLAINTEXT://a:1,PLAINTEXT://b:2", "give exactly one listener"),
    ("listeners=127.0.0.1:9093", "must look like PLAINTEXT://HOST:PORT"),
    ("log.dirs=/a,/b", "give exactly one directory"),
    ("log.dirs=/a\nlog.dir=/b", "log.dirs and log.dir both given"),
    ("listeners=PLAINTEXT://a:1\nport=2", "listeners and port both given"),
])
def test_what_cannot_work_yet_is_refused_naming_the_key(tmp_path: Path, line: str,
                                                        message: str) -> None:
    props = tmp_path / "server.properties"
    props.write_text(line + "\n")
    with pytest.raises(CliError, match=message):
        build_config(str(props), {})


async def test_a_broker_starts_from_a_kafka_style_file(tmp_path: Path) -> None:
    zk = ZkProcess(str(tmp_path / "zk"), 0)
    await asyncio.to_thread(zk.start)
    props = tmp_path / "server.properties"
    props.write_text(f"broker.id=7\nlisteners=PLAINTEXT://127.0.0.1:0\n"
                     f"log.dirs={tmp_path / 'data'}\nzookeeper.connect={zk.hosts}/k\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "klamm.broker.cli", "broker", "start", "--config", str(props),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        port = None
        async with asyncio.timeout(60):
            while port is None:
                line = (await proc.stdout.readline()).decode()
                assert line, "the broker exited"
                if line.startswith("klamm broker") and (m := READY.search(line)):
                    port = int(m.group(2))
        async with Admin(bootstrap_servers=f"127.0.0.1:{port}") as admin:
            assert [b.node_id for b in (await admin.describe_cluster()).brokers] == [7]
        assert (tmp_path / "data" / "meta.properties").exists()
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
        zk.kill()
