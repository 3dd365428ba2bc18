"""The ``klamm`` CLI as a user runs it: real processes, stdin/stdout, exit codes."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import BrokerProcess


def klamm(*args: str, stdin: str | None = None,
          timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "klamm.broker.cli", *args], input=stdin,
                          capture_output=True, text=True, timeout=timeout)


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
    # partitions are added as kafka-topics --alter adds them; the assignment may list the
    # existing partitions first (skipped), and fewer partitions are refused
    out = klamm("topics", "alter", "adm", "--partitions", "4", "-b", b)
    assert out.returncode == 0 and "grew from 2 to 4 partitions" in out.stdout, out.stderr
    out = klamm("topics", "alter", "adm", "--partitions", "5", "--replica-assignment",
                "0,0,0,0,0", "-b", b)
    assert out.returncode == 0 and "warning" not in out.stderr, out.stderr
    out = klamm("topics", "alter", "adm", "--partitions", "6", "--replica-assignment",
                "0,0,0,0,7,0", "-b", b)
    assert out.returncode == 0 and "existing partitions are not moved" in out.stderr
    out = klamm("topics", "describe", "adm", "-b", b)
    assert "PartitionCount: 6" in out.stdout
    assert "Partition: 5\tLeader: 0\tReplicas: 0\tIsr: 0" in out.stdout
    out = klamm("topics", "alter", "adm", "--partitions", "3", "-b", b)
    assert out.returncode == 1 and "INVALID_PARTITIONS" in out.stderr
    assert "must be above 6, got 3" in out.stderr and "Traceback" not in out.stderr
    out = klamm("topics", "alter", "adm", "--replica-assignment", "0", "-b", b)
    assert out.returncode == 2 and "give --partitions too" in out.stderr
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


def _every_command() -> Iterator[tuple[str, ...]]:
    """Every command and group of the CLI, as the words a user types (lazy ones loaded)."""
    import click

    from klamm.broker.cli.main import cli

    def walk(group: click.Group, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        ctx = click.Context(group)
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, name
            yield (*path, name)
            if isinstance(command, click.Group):
                yield from walk(command, (*path, name))

    yield from walk(cli, ())


def test_every_command_help_shows_an_example() -> None:
    from click.testing import CliRunner

    from klamm.broker.cli.main import cli

    commands = list(_every_command())
    assert ("zk", "delete") in commands and ("broker",) in commands and len(commands) > 20
    runner = CliRunner()
    for words in commands:
        out = runner.invoke(cli, [*words, "--help"])
        assert out.exit_code == 0 and "Example:" in out.output, (words, out.output)
    assert "Example:" in klamm("--help").stdout  # and the whole program, as a user runs it


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


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "klamm.broker.cli", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _read_values(bootstrap: str, topic: str) -> list[str]:
    out = klamm("consume", topic, "--from-beginning", "--timeout-ms", "1000", "-b", bootstrap)
    return out.stdout.splitlines()


def test_ctrl_c_stops_a_produce_whose_stdin_stays_open(broker_proc) -> None:
    """Before, SIGINT printed ^C and the command kept running (stdin was read in the loop's
    thread pool, which shutdown waits for). Now it stops at once: what was acknowledged
    stays, and the last line says what happened to the rest (exit 130)."""
    b = broker_proc.bootstrap
    assert klamm("topics", "create", "ctrl-c", "-b", b).returncode == 0
    proc = _spawn("produce", "ctrl-c", "-b", b)
    try:
        assert proc.stdin is not None
        proc.stdin.write("one\ntwo\nthree\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while _read_values(b, "ctrl-c") != ["one", "two", "three"]:
            assert time.monotonic() < deadline, "the records never arrived"
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=20)  # stdin is still open
        stderr = proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
    assert code == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith(
        "interrupted: sent 3, acknowledged 3, failed 0"), stderr
    assert "Traceback" not in stderr
    assert _read_values(b, "ctrl-c") == ["one", "two", "three"]


def test_a_dead_broker_is_reported_once_and_the_last_line_counts_what_failed(
        tmp_path: Path) -> None:
    """Before, one warning per retry (1,181 lines in 120 s), then unretrieved-future
    tracebacks, and no word on how many records were lost."""
    broker = BrokerProcess(str(tmp_path / "data"))
    broker.start()
    try:
        b = broker.bootstrap
        assert klamm("topics", "create", "gone", "-b", b).returncode == 0
        proc = _spawn("produce", "gone", "-b", b,
                      "--producer-property", "retry.backoff.ms=20",
                      "--producer-property", "request.timeout.ms=1000",
                      "--producer-property", "delivery.timeout.ms=3000")
        assert proc.stdin is not None
        proc.stdin.write("kept-1\nkept-2\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while _read_values(b, "gone") != ["kept-1", "kept-2"]:
            assert time.monotonic() < deadline, "the records never arrived"
        broker.kill()
        out, err = proc.communicate("lost-1\nlost-2\nlost-3\n", timeout=60)
    finally:
        broker.kill()
    lines = err.strip().splitlines()
    assert proc.returncode == 1, err
    assert lines[-1].startswith("error: sent 5, acknowledged 2, failed 3: "), err
    assert "delivery.timeout.ms=3000" in lines[-1]
    assert "never retrieved" not in err and "Traceback" not in err
    assert len(lines) <= 6, err  # a retry every 20 ms for 3 s: ~150 attempts, a few lines


def test_producer_and_consumer_properties_reach_the_clients(broker_proc,
                                                            tmp_path: Path) -> None:
    b = broker_proc.bootstrap
    assert klamm("topics", "create", "big", "--config", "max.message.bytes=4194304",
                 "-b", b).returncode == 0
    line = "x" * (1_500_000) + "\n"
    refused = klamm("produce", "big", "-b", b, stdin=line)
    assert refused.returncode == 1
    assert "max.request.size" in refused.stderr
    assert "--producer-property max.request.size=BYTES" in refused.stderr
    ok = klamm("produce", "big", "-b", b, "--producer-property", "max.request.size=4194304",
               stdin=line)
    assert ok.returncode == 0, ok.stderr
    props = tmp_path / "producer.properties"
    props.write_text("# as kafka-console-producer takes it\nmax.request.size=4194304\n")
    ok = klamm("produce", "big", "-b", b, "--producer.config", str(props), stdin=line)
    assert ok.returncode == 0, ok.stderr
    out = klamm("consume", "big", "--from-beginning", "--timeout-ms", "2000", "-b", b,
                "--consumer-property", "max.partition.fetch.bytes=4194304")
    assert out.stdout.splitlines() == [line.strip()] * 2
    wrong = klamm("produce", "big", "-b", b, "--producer-property", "max.requst.size=1",
                  stdin="x\n")
    assert wrong.returncode == 1 and "max.requst.size" in wrong.stderr


def test_a_closed_stdout_ends_consume_quietly(broker_proc) -> None:
    """Before: `klamm consume t | head -3` ended with `error: Broken pipe ()` and exit 1."""
    b = broker_proc.bootstrap
    assert klamm("topics", "create", "pipe", "-b", b).returncode == 0
    out = klamm("perf", "produce", "pipe", "--num-records", "20000", "--record-size", "100",
                "-b", b)
    assert out.returncode == 0, out.stderr
    proc = subprocess.Popen([sys.executable, "-m", "klamm.broker.cli", "consume", "pipe",
                             "--from-beginning", "--timeout-ms", "5000", "-b", b],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()  # one line, then the reader goes away, as head does
    proc.stdout.close()
    code = proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    assert code == 0, err
    assert err == ""


def test_a_taken_port_is_named_with_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = klamm("standalone", "--listen", f"127.0.0.1:{port}", "--data-dir",
                    str(tmp_path / "d"))
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: cannot listen on 127.0.0.1:{port}: the port is in use by another process; "
        f"stop it, or pick another port with --listen HOST:PORT")


def test_perf_produce_counts_acknowledged_and_failed_records(broker_proc) -> None:
    """Before, --num-records was reported as sent with only the last record awaited."""
    b = broker_proc.bootstrap
    assert klamm("topics", "create", "perf-ok", "-b", b).returncode == 0
    out = klamm("perf", "produce", "perf-ok", "--num-records", "5000", "--json", "-b", b)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert (res["records"], res["acknowledged"], res["failed"]) == (5000, 5000, 0)
    assert klamm("topics", "create", "perf-tiny", "--config", "max.message.bytes=200",
                 "-b", b).returncode == 0
    out = klamm("perf", "produce", "perf-tiny", "--num-records", "3000", "--record-size", "300",
                "-b", b)
    assert out.returncode == 1
    assert "3000 records sent (0 acknowledged, 3000 failed)" in out.stdout
    assert "error: 3000 of 3000 records failed (0 acknowledged): MESSAGE_TOO_LARGE" in out.stderr
    # Any producer setting, as kafka-producer-perf-test's --producer-props; typed options win
    out = klamm("perf", "produce", "perf-ok", "--num-records", "100", "--json", "-b", b,
                "--producer-property", "linger.ms=1", "--producer-property", "nosuch=1")
    assert out.returncode == 1 and "nosuch" in out.stderr
    out = klamm("perf", "produce", "perf-ok", "--num-records", "100", "--acks", "0", "-b", b)
    assert out.returncode == 0 and "acks=0: none acknowledged" in out.stdout, out.stdout


_IMPORTED = """
import sys
from klamm.broker.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = ("pydantic", "asyncio", "uvloop", "klamm.client", "klamm.client.producer",
         "klamm.client.consumer", "klamm.broker.server")
print(",".join(m for m in heavy if m in sys.modules), file=sys.stderr)
"""


def test_help_and_topics_list_import_only_what_they_use(broker_proc) -> None:
    """Every command took about 0.5 s before doing anything (imports); `klamm --help` now
    loads no client, asyncio or pydantic, and `topics list` no producer, consumer or broker
    (measured in bench/cli_startup.py, not here)."""
    def imported(*args: str) -> list[str]:
        out = subprocess.run([sys.executable, "-c", _IMPORTED, *args], capture_output=True,
                             text=True, timeout=60)
        last = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else ""
        return last.split(",") if last else []

    assert imported("--help") == []
    loaded = imported("topics", "list", "-b", broker_proc.bootstrap)
    assert "klamm.client" in loaded
    assert not {"klamm.client.producer", "klamm.client.consumer",
                "klamm.broker.server"} & set(loaded), loaded


def test_the_help_lines_of_lazy_commands_match_the_commands() -> None:
    import importlib

    from klamm.broker.cli.main import LAZY_COMMANDS

    for name, (module, attr, line) in LAZY_COMMANDS.items():
        command = getattr(importlib.import_module(f"klamm.broker.cli.{module}"), attr)
        assert command.get_short_help_str(limit=55) == line, name
