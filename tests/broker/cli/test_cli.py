"""The ``klamm`` CLI as a user runs it: real processes, stdin/stdout, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import BrokerProcess


def klamm(*args: str, stdin: str | None = None,
          timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "klamm.broker.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def broker_proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = BrokerProcess(str(tmp_path_factory.mktemp("cli") / "data"))
    proc.start()
    yield proc
    proc.terminate()


def test_produce_then_consume_round_trip_with_keys_and_headers(broker_proc) -> None:
    b = broker_proc.bootstrap
    assert klamm("topics", "create", "rt", "--partitions", "1", "-b", b).returncode == 0
    out = klamm("produce", "rt", "--key-separator", ":", "--header", "src=cli", "-b", b,
                stdin="k1:hello\nk2:world\nk1:again\n")
    assert out.returncode == 0, out.stderr
    out = klamm("consume", "rt", "--from-beginning", "--max-messages", "3", "--print-key",
                "--key-separator", ":", "--timeout-ms", "5000", "-b", b)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["k1:hello", "k2:world", "k1:again"]
    out = klamm("consume", "rt", "--partition", "0", "--offset", "1", "--format", "json",
                "--timeout-ms", "1000", "-b", b)
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["offset"], r["key"], r["value"], r["headers"]) for r in rows] == \
        [(1, "k2", "world", {"src": "cli"}), (2, "k1", "again", {"src": "cli"})]


def test_topics_describe_alter_list_delete(broker_proc) -> None:
    b = broker_proc.bootstrap
    assert klamm("topics", "create", "adm", "--partitions", "2", "--config",
                 "retention.ms=60000", "-b", b).returncode == 0
    out = klamm("topics", "describe", "adm", "-b", b)
    assert "PartitionCount: 2" in out.stdout and "retention.ms=60000" in out.stdout
    assert "Partition: 1\tLeader: 0\tReplicas: 0\tIsr: 0" in out.stdout
    assert klamm("topics", "alter", "adm", "--config", "segment.bytes=1048576",
                 "-b", b).returncode == 0
    assert "segment.bytes=1048576" in klamm("topics", "describe", "adm", "-b", b).stdout
    assert "adm" in klamm("topics", "list", "-b", b).stdout.split()
    assert klamm("topics", "delete", "adm", "-b", b).returncode == 0
    assert "adm" not in klamm("topics", "list", "-b", b).stdout.split()


@pytest.mark.parametrize("args, message", [
    (["topics", "list", "-b", "127.0.0.1:1"], "is a broker running there"),
    (["consume", "missing", "--timeout-ms", "100"], "does not exist"),
    (["topics", "create", "bad name!"], "INVALID_TOPIC"),
    (["topics", "create", "x", "--config", "retention.mss=1"], "retention.mss"),
    (["consume", "t", "--offset", "5"], "--offset needs --partition"),
    (["perf", "produce", "t"], "--num-records"),
])
def test_user_errors_are_one_line_without_traceback(broker_proc, args: list[str],
                                                    message: str) -> None:
    if "-b" not in args:
        args = [*args, "-b", broker_proc.bootstrap]
    out = klamm(*args)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_every_command_help_shows_an_example() -> None:
    for cmd in (["standalone"], ["broker", "start"], ["topics", "create"], ["topics", "list"],
                ["topics", "describe"], ["topics", "alter"], ["topics", "delete"], ["produce"],
                ["consume"], ["perf", "produce"], ["perf", "consume"], ["perf", "e2e"]):
        out = klamm(*cmd, "--help")
        assert out.returncode == 0 and "Example:" in out.stdout, cmd


def test_perf_tools_print_the_json_keys(broker_proc) -> None:
    b = broker_proc.bootstrap
    klamm("topics", "create", "perf", "-b", b)
    out = klamm("perf", "produce", "perf", "--num-records", "20000", "--record-size", "100",
                "--json", "-b", b)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("records", "seconds", "records_per_sec", "mb_per_sec", "latency_ms_p50",
                "latency_ms_p99", "latency_ms_max"):
        assert key in res
    assert res["records"] == 20000 and res["records_per_sec"] > 0
    out = klamm("perf", "consume", "perf", "--num-records", "20000", "--json", "-b", b)
    assert json.loads(out.stdout.strip().splitlines()[-1])["records"] >= 20000
    out = klamm("perf", "e2e", "perf-lat", "--num-records", "200", "--throughput", "1000",
                "--json", "-b", b)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["latency_ms_p50"] > 0


def test_standalone_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    out = subprocess.Popen([sys.executable, "-m", "klamm.broker.cli", "standalone",
                            "--data-dir", str(tmp_path / "sa"), "--listen", "127.0.0.1:0"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert out.stdout is not None
    try:
        line = out.stdout.readline()
        while "listening on" not in line:
            assert line, "standalone exited before listening"
            line = out.stdout.readline()
        address = line.split("listening on ")[1].split()[0]
        assert klamm("topics", "create", "s", "-b", address).returncode == 0
        out.terminate()
        assert out.wait(30) == 0
        assert (tmp_path / "sa" / "s-0").is_dir()
    finally:
        out.kill()  # a no-op once it exited; never leave it running after a failure
        out.wait(30)


def test_standalone_can_embed_the_coordination_service(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "klamm.broker.cli", "standalone",
                             "--data-dir", str(tmp_path / "sa"), "--listen", "127.0.0.1:0",
                             "--zk-listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    try:
        addresses: dict[str, str] = {}
        while len(addresses) < 2:
            line = proc.stdout.readline()
            assert line, f"standalone exited before listening: {addresses}"
            if line.startswith("klamm ") and "listening on" in line:  # not a log line
                addresses[line.split()[1]] = line.split("listening on ")[1].split()[0]
        zk, broker = addresses["zk"], addresses["broker"]
        created = klamm("zk", "create", "/mine", "one", "-z", zk)
        assert created.returncode == 0, created.stderr
        assert klamm("zk", "get", "/mine", "-z", zk).stdout.strip() == "one"
        assert "0" in klamm("zk", "ls", "/brokers/ids", "-z", zk).stdout  # the broker uses it
        assert klamm("topics", "create", "s", "-b", broker).returncode == 0
        proc.terminate()
        assert proc.wait(30) == 0
        assert (tmp_path / "sa" / "zk").is_dir() and (tmp_path / "sa" / "s-0").is_dir()
    finally:
        proc.kill()  # a no-op once it exited; never leave it running after a failure
        proc.wait(30)
