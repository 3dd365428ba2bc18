"""A real coordination server process (``python -m klamm.zk``, or ``klamm zk start`` with
``cli=True``) for kill -9 tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

READY = re.compile(r"listening on (\S+):(\d+)")


class ZkProcess:
    def __init__(self, data_dir: str, port: int = 0, *overrides: str, cli: bool = False) -> None:
        self.data_dir = data_dir
        self.port = port
        self.overrides = overrides
        self.cli = cli
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._ready = threading.Event()

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "ZkProcess":
        command = ["klamm.broker.cli", "zk", "start"] if self.cli else ["klamm.zk"]
        args = [sys.executable, "-m", *command, "--listen", f"127.0.0.1:{self.port}",
                "--data-dir", self.data_dir]
        for item in self.overrides:
            args += ["--override", item]
        self._ready.clear()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        if not self._ready.wait(timeout):
            self.kill()
            raise RuntimeError("zk server did not become ready:\n" + "".join(self.output))
        return self

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.output.append(line)
            m = READY.search(line)
            if m and not self._ready.is_set():
                self.port = int(m.group(2))
                self._ready.set()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)
