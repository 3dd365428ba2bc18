"""The README's code blocks run as written, so the README cannot rot: the five-minute tour
against a real standalone broker, the Python snippets as scripts (twice: a second run must
work too), and the coordination-service tour against a real service. Every other block is
listed in NOT_RUN with the reason; a new block must be classified here."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import BrokerProcess

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)

# First line of each block not run here -> why.
NOT_RUN = {
    "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/klamm standalone":
        "the set-up command itself: CI runs the other one on a fresh clone",
    "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/python -m "
    "pytest": "the test command: this is it",
    "klamm zk start --listen 127.0.0.1:2181 --data-dir ./klamm-zk-data":
        "the cluster tour's fixed ports; tests/cluster runs the same scenario on free ports",
    "export KLAMM_BOOTSTRAP_SERVER=127.0.0.1:9093,127.0.0.1:9094,127.0.0.1:9095":
        "the cluster tour (SIGKILL of a broker): tests/cluster/test_failover.py and "
        "test_operations_cli.py run it",
    "docker compose up -d                 # builds the klamm:latest image on first use":
        "needs a Docker engine",
    "KLAMM_PUBLISH_HOST=0.0.0.0 KLAMM_ADVERTISED_HOST=kafka-host.example docker compose up -d":
        "needs a Docker engine",
    "docker build -t klamm .": "needs a Docker engine",
    "sudo docker/build-base-image.sh                 # or: ... http://your-mirror/debian":
        "needs a Docker engine and a Debian mirror",
    "# clients on the Docker network mynet, bootstrapping from klamm:9092":
        "needs a Docker engine",
}


def blocks() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer((ROOT / "README.md").read_text())]


def _first(code: str) -> str:
    return code.strip().splitlines()[0].strip()


def _env(**extra: str) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # the venv's klamm
    return {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], **extra}


def test_every_block_is_run_or_says_why_not() -> None:
    tour = _tour_blocks()
    unknown = [_first(code) for _, code in blocks()
               if _first(code) not in NOT_RUN and code not in tour]
    assert not unknown, f"README blocks neither run by this test nor in NOT_RUN: {unknown}"


def _tour_blocks() -> list[str]:
    found = blocks()
    shell_tour = next(code for lang, code in found
                      if lang == "sh" and code.startswith("klamm topics create orders"))
    zk_tour = next(code for lang, code in found
                   if lang == "sh" and code.startswith("klamm zk start") and "&" in code)
    pythons = [code for lang, code in found if lang == "python"]
    return [shell_tour, zk_tour, *pythons]


@pytest.fixture(scope="module")
def readme_broker(tmp_path_factory: pytest.TempPathFactory):
    broker = BrokerProcess(str(tmp_path_factory.mktemp("readme") / "data"))
    broker.start()
    yield broker
    broker.terminate()


def test_the_five_minute_tour_runs(readme_broker, tmp_path: Path) -> None:
    shell_tour = _tour_blocks()[0]
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", shell_tour], cwd=tmp_path,
                          env=_env(KLAMM_BOOTSTRAP_SERVER=readme_broker.bootstrap),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Topic: orders" in done.stdout and "alice:one" in done.stdout, done.stdout
    assert "records sent" in done.stdout


def test_the_client_snippet_runs_twice(readme_broker, tmp_path: Path) -> None:
    snippet = next(code for code in _tour_blocks()[2:] if "klamm.client" in code)
    script = tmp_path / "tour.py"
    script.write_text(snippet.replace("localhost:9092", readme_broker.bootstrap))
    for run in (1, 2):
        done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, (run, done.stderr)
        assert "stored at offset" in done.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_coordination_service_tour_and_snippet_run(tmp_path: Path) -> None:
    port = str(_free_port())
    zk_tour = _tour_blocks()[1].replace("2181", port)
    snippet = next(code for code in _tour_blocks()[2:] if "klamm.zk" in code)
    script = tmp_path / "watch.py"
    script.write_text(snippet.replace("2181", port))
    # The commands without -z use the default address: KLAMM_ZK points it at this service.
    # The EXIT trap stops the backgrounded service however the tour ends.
    tour = f"trap 'kill $(jobs -p) 2>/dev/null' EXIT\n{zk_tour}\n{sys.executable} {script}\n"
    shell = subprocess.Popen(["bash", "-euo", "pipefail", "-c", tour], cwd=tmp_path,
                             env=_env(KLAMM_ZK=f"localhost:{port}"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = shell.communicate(timeout=90)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
    assert shell.returncode == 0, out + err
    assert "hello" in out and "['1']" in out and "['1', '2']" in out, out + err
