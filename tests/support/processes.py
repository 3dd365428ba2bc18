"""Real server processes (broker, coordination service) for tests that kill -9, SIGTERM, or
restart them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence

READY = re.compile(r"listening on (\S+):(\d+)")


class ServerProcess(ABC):
    """A ``python -m ...`` child whose output is collected; ``start`` waits for the line saying
    which port it listens on (so nothing sleeps), and learns the port from it. ``prefix`` runs
    it through another command first (one that execs its arguments, such as ``unshare``)."""

    what = "server"

    def __init__(self, data_dir: str, port: int = 0, prefix: Sequence[str] = ()) -> None:
        self.data_dir = data_dir
        self.port = port
        self.prefix = list(prefix)
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._ready = threading.Event()

    @abstractmethod
    def command(self) -> list[str]:
        """Arguments after ``python -m``."""

    def start(self, timeout: float = 30.0) -> "ServerProcess":
        self.launch()
        self.wait_ready(timeout)
        return self

    def launch(self) -> None:
        """Spawn without waiting (``wait_ready`` then), so several can start at once."""
        self._ready.clear()
        self.output = []
        self.proc = subprocess.Popen([*self.prefix, sys.executable, "-m", *self.command()],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()

    def wait_ready(self, timeout: float = 30.0) -> None:
        if not self._ready.wait(timeout):
            self.kill()
            raise RuntimeError(f"{self.what} did not become ready:\n" + "".join(self.output))

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def log_text(self) -> str:
        return "".join(self.output)

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.output.append(line)
            m = READY.search(line)
            if m and not self._ready.is_set():
                self.port = int(m.group(2))
                self._ready.set()

    def kill(self) -> None:
        """SIGKILL: no flush, no checkpoint, no clean-shutdown marker."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


class BrokerProcess(ServerProcess):
    """A broker of the cluster at ``zk`` (``python -m klamm.broker``, i.e. ``klamm broker
    start``), or without ``zk`` a ``klamm standalone`` node; ``--override key=value`` for each
    of ``overrides``."""

    what = "broker"

    def __init__(self, data_dir: str, *, port: int = 0, extra: Sequence[str] = (),
                 overrides: dict[str, object] | None = None, prefix: Sequence[str] = (),
                 zk: str | None = None, broker_id: int | None = None) -> None:
        super().__init__(data_dir, port, prefix)
        self.extra = list(extra)
        self.overrides = dict(overrides or {})
        self.zk = zk
        self.broker_id = broker_id

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        start = ["klamm.broker", "--zk", self.zk] if self.zk else \
            ["klamm.broker.cli", "standalone"]
        if self.broker_id is not None:
            start += ["--override", f"broker.id={self.broker_id}"]
        args = [*start, "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir,
                *self.extra]
        for key, value in self.overrides.items():
            args += ["--override", f"{key}={value}"]
        return args

    def start(self, timeout: float = 30.0) -> "BrokerProcess":
        super().start(timeout)
        return self
