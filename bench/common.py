"""What the benchmark scripts share: the machine description and a server child process."""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
READY = re.compile(r"listening on (\S+):(\d+)")


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) // 1024 // 1024} GiB"
    except OSError:
        pass
    return {"cpu": cpu, "cores": str(os.cpu_count()), "memory": mem,
            "kernel": platform.release(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d")}


class ServerProcess:
    """``python -m MODULE --listen 127.0.0.1:0 --data-dir DIR``, up once it prints the port
    it listens on; SIGTERM (a clean shutdown) on exit."""

    def __init__(self, module: str, data_dir: str) -> None:
        self.module = module
        self.data_dir = data_dir
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self._ready = threading.Event()

    def __enter__(self) -> "ServerProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, "--listen", "127.0.0.1:0", "--data-dir",
             self.data_dir], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._ready.wait(60):
            self.proc.kill()
            raise RuntimeError(f"{self.module} did not start")
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:  # keep reading, or a chatty server would block
            m = READY.search(line)
            if m:
                self.port = int(m.group(2))
                self._ready.set()

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(60)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"
