"""``klamm zk``: start a server, then ls/get/create/set/delete against it as a user would."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.zk.processes import ZkProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ZkProcess]:
    proc = ZkProcess(str(tmp_path / "zk"))
    proc.start()
    yield proc
    proc.kill()


def klamm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "klamm.broker.cli", "zk", *args],
                          capture_output=True, text=True, timeout=30)


def test_create_get_set_ls_delete_round_trip(server: ZkProcess) -> None:
    z = ["-z", server.hosts]
    assert klamm("create", "/cfg/x", "hello", "--makepath", *z).stdout.strip() == "/cfg/x"
    assert klamm("get", "/cfg/x", *z).stdout == "hello\n"
    assert klamm("set", "/cfg/x", "bye", "--version", "0", *z).stdout.strip() == "version = 1"
    seq = klamm("create", "/cfg/s-", "--sequential", *z).stdout.strip()
    assert seq == "/cfg/s-0000000001"
    assert klamm("ls", "/cfg", *z).stdout.split() == ["s-0000000001", "x"]
    out = klamm("get", "/cfg/x", "--stat", *z).stdout
    assert "version = 1" in out and "ephemeral_owner = 0x0" in out
    assert klamm("delete", "/cfg", "--recursive", *z).returncode == 0
    assert klamm("ls", "/", *z).stdout == ""


def test_errors_are_one_line_and_exit_non_zero(server: ZkProcess) -> None:
    z = ["-z", server.hosts]
    result = klamm("get", "/missing", *z)
    assert result.returncode != 0 and "no node /missing" in result.stderr
    assert "--makepath" in result.stderr and "Error" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    klamm("create", "/a", *z)
    result = klamm("set", "/a", "x", "--version", "7", *z)
    assert result.returncode != 0 and "/a is at version 0, expected 7" in result.stderr
    assert "klamm zk get PATH --stat" in result.stderr
    klamm("create", "/a/b", *z)
    result = klamm("delete", "/a", *z)
    assert result.returncode != 0 and "pass --recursive" in result.stderr
    result = klamm("ls", "/", "-z", "127.0.0.1:1", "--timeout-ms", "300")
    assert result.returncode != 0 and "could not reach" in result.stderr
    assert "Traceback" not in result.stderr


def test_ephemeral_node_from_the_cli_is_gone_when_the_command_exits(server: ZkProcess) -> None:
    z = ["-z", server.hosts]
    assert klamm("create", "/e", "--ephemeral", *z).returncode == 0
    assert klamm("ls", "/", *z).stdout == ""


def test_start_rejects_an_unknown_config_key(tmp_path: Path) -> None:
    result = klamm("start", "--data-dir", str(tmp_path), "--override", "max.sesion.ms=1")
    assert result.returncode != 0 and "max.sesion.ms" in result.stderr


def test_klamm_zk_start_serves_keeps_data_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    data = str(tmp_path / "zk")
    server = ZkProcess(data, 0, "max.node.bytes=64", cli=True).start()
    try:
        z = ["-z", server.hosts]
        assert klamm("create", "/cluster-a/x", "1", "--makepath", *z).returncode == 0
        assert klamm("get", "/x", "-z", f"{server.hosts}/cluster-a").stdout == "1\n"  # chroot
        result = klamm("set", "/cluster-a/x", "y" * 65, *z)  # --override
        assert result.returncode != 0 and "exceeds max.node.bytes (64)" in result.stderr
        assert server.terminate() == 0
    finally:
        server.kill()
    again = ZkProcess(data, cli=True).start()
    try:
        assert klamm("get", "/cluster-a/x", "-z", again.hosts).stdout == "1\n"
    finally:
        again.kill()
