"""More mistakes a user makes with the CLI, each answered with one line naming the cause and
what to do, the right exit code, and no traceback (found by trying every command against
wrong addresses, closed pipes, interrupts and bad values)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


from tests.support.processes import BrokerProcess
from tests.zk.processes import ZkProcess

from .test_cli import klamm


def _cli(*args: str, **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "klamm.broker.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)  # type: ignore[call-overload]


def _taken_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_verifiable_producer_into_a_closed_pipe_ends_quietly(broker_proc) -> None:
    """Before: `verifiable-producer ... | head -1` printed a traceback per record."""
    proc = _cli("verifiable-producer", "vp-pipe", "--max-messages", "20000",
                "-b", broker_proc.bootstrap)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert b"startup_complete" in proc.stdout.readline()
        proc.stdout.close()
        code = proc.wait(timeout=120)
        err = proc.stderr.read().decode()
        assert code == 0 and "Traceback" not in err and len(err.splitlines()) < 5, err
    finally:
        proc.kill()
        proc.wait()


def test_a_second_interrupt_stops_the_verifiable_producer_at_once(tmp_path: Path) -> None:
    """Before, with the broker gone, it waited out delivery.timeout.ms whatever was sent."""
    broker = BrokerProcess(str(tmp_path / "gone")).start()
    proc = _cli("verifiable-producer", "vp-int", "--throughput", "200",
                "-b", broker.bootstrap)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert b"startup_complete" in proc.stdout.readline()
        broker.kill()
        proc.send_signal(signal.SIGINT)
        said = []
        while not said or b"waiting for" not in said[-1]:  # the first interrupt was handled
            line = proc.stderr.readline()
            assert line, b"".join(said)
            said.append(line)
        proc.send_signal(signal.SIGINT)
        started = time.monotonic()
        proc.wait(timeout=30)
        out = proc.stdout.read().decode()
        assert time.monotonic() - started < 20  # not delivery.timeout.ms (120 s)
        assert '"name": "tool_data"' in out and "Traceback" not in proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait()
        broker.kill()


def test_coordination_addresses_that_are_wrong_are_named(tmp_path: Path,
                                                         broker_proc) -> None:
    out = klamm("zk", "ls", "/", "-z", "nonsense")
    assert out.returncode == 1 and "host must look like HOST:PORT" in out.stderr
    assert "BadArgumentsError" not in out.stderr
    started = time.monotonic()
    out = klamm("broker", "start", "--broker-id", "9", "--listen", "127.0.0.1:0",
                "--data-dir", str(tmp_path / "b9"), "--zk", broker_proc.bootstrap,
                timeout=60)
    assert out.returncode == 1 and "is not a coordination service" in out.stderr, out.stderr
    assert time.monotonic() - started < 30  # refused, not retried for ever


def test_a_data_dir_that_cannot_be_used_is_named_not_the_listener(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    out = klamm("standalone", "--listen", "127.0.0.1:0", "--data-dir",
                str(tmp_path / "afile" / "sub"))
    assert out.returncode == 1 and "cannot use the data dir" in out.stderr, out.stderr
    assert "cannot listen" not in out.stderr


def test_a_taken_metrics_port_names_metrics_port(tmp_path: Path) -> None:
    with _taken_port() as taken:
        port = taken.getsockname()[1]
        out = klamm("standalone", "--listen", "127.0.0.1:0", "--data-dir",
                    str(tmp_path / "m"), "--override", f"metrics.port={port}")
    assert out.returncode == 1 and f"127.0.0.1:{port} (metrics.port)" in out.stderr, out.stderr
    assert "metrics.port=PORT" in out.stderr


def test_zk_start_on_a_taken_port_says_what_to_do(tmp_path: Path) -> None:
    with _taken_port() as taken:
        port = taken.getsockname()[1]
        out = klamm("zk", "start", "--listen", f"127.0.0.1:{port}", "--data-dir",
                    str(tmp_path / "zk"))
    assert out.returncode == 1 and "the port is in use" in out.stderr, out.stderr
    assert "Errno" not in out.stderr


def test_standalone_takes_log_dirs_alone(tmp_path: Path) -> None:
    """Before: `standalone --override log.dirs=D` said log.dirs and log.dir were both given."""
    proc = BrokerProcess(str(tmp_path / "unused"), extra=[])
    proc.command = lambda: ["klamm.broker.cli", "standalone", "--listen",  # type: ignore
                            "127.0.0.1:0", "--override", f"log.dirs={tmp_path / 'dirs'}"]
    proc.start()
    try:
        assert (tmp_path / "dirs" / "meta.properties").exists()
    finally:
        assert proc.terminate() == 0


def test_bad_counts_and_timeouts_are_refused(broker_proc) -> None:
    b = broker_proc.bootstrap
    out = klamm("perf", "produce", "t", "--num-records", "-5", "-b", b)
    assert out.returncode == 2 and "--num-records" in out.stderr
    out = klamm("consume", "t", "--timeout-ms", "0", "-b", b)
    assert out.returncode == 2 and "--timeout-ms" in out.stderr and "-1 (never)" in out.stderr


def test_listing_into_a_closed_pipe_exits_zero(broker_proc) -> None:
    klamm("topics", "create", "listed", "-b", broker_proc.bootstrap)
    proc = _cli("topics", "list", "-b", broker_proc.bootstrap)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the answer is printed (| head -0)
    assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()


def test_zk_errors_in_commands_are_sentences(tmp_path: Path) -> None:
    server = ZkProcess(str(tmp_path / "zk"), 0).start()
    try:
        out = klamm("zk", "delete", "/nope", "-z", server.hosts)
        assert out.returncode == 1 and out.stderr.startswith("error: no node /nope")
    finally:
        server.terminate()
