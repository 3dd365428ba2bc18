"""What the benchmark scripts share: the machine description and a server child process."""

from __future__ import annotations

import collections
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


def split_cpus() -> tuple[set[int] | None, set[int] | None]:
    """CPUs for the server and for its clients: one each, as if on two machines.

    Left to itself the scheduler often wakes a client on the CPU its server is still using
    (loopback wake-ups are "sync" and pull the wakee to the waker), and then one waits out the
    other's time slice: on 2 cores it added about a third to the end-to-end p99 (and had
    tripled it while the broker still answered a parked fetch a few loop turns after the
    append). (None, None) when there are fewer than two CPUs to split.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return {cpus[0]}, set(cpus[1:])


def set_affinity(pid: int, cpus: set[int] | None) -> None:
    """Pin every thread of process ``pid`` to ``cpus`` (None: every CPU this script may use)."""
    allowed = cpus if cpus is not None else os.sched_getaffinity(0)
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            os.sched_setaffinity(int(tid), allowed)
        except ProcessLookupError:  # a thread that just ended
            pass


class ServerProcess:
    """``python -m MODULE [ARGS] --listen 127.0.0.1:0 --data-dir DIR [EXTRA]``, up once it
    prints the port it listens on; SIGTERM (a clean shutdown) on exit. ``cpus`` pins it from
    the start."""

    def __init__(self, module: str, data_dir: str, cpus: set[int] | None = None,
                 args: tuple[str, ...] = (), extra: tuple[str, ...] = ()) -> None:
        self.module = module
        self.data_dir = data_dir
        self.cpus = cpus
        self.args = args
        self.extra = extra
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.output: collections.deque[str] = collections.deque(maxlen=50000)  # last lines
        self._ready = threading.Event()

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def start(self) -> "ServerProcess":
        self._ready.clear()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args, "--listen",
             f"127.0.0.1:{self.port}", "--data-dir", self.data_dir, *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if self.cpus is not None:
            set_affinity(self.proc.pid, self.cpus)
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._ready.wait(60):
            self.proc.kill()
            raise RuntimeError(f"{self.module} did not start")
        return self

    def _pump(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        for line in proc.stdout:  # keep reading, or a chatty server would block
            self.output.append(line)
            m = READY.search(line)
            if m and not self._ready.is_set():
                self.port = int(m.group(2))
                self._ready.set()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> int:
        """SIGTERM and wait; the exit status (-9 if it had to be killed)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def replace_section(path: Path, section: str, heading: str) -> None:
    """Put ``section`` in place of the file's section starting with ``heading`` (or before
    the coordination service's section, or at the end)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    lines = text.rstrip("\n").split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith(heading)), None)
    if start is not None:
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")),
                   len(lines))
    else:
        start = end = next((i for i, line in enumerate(lines)
                            if line.startswith("## Coordination service")), len(lines))
    before = lines[:start]
    if before and before[-1].strip():
        before.append("")  # a blank line between the previous section and this one
    new = before + section.rstrip("\n").split("\n") + [""] + lines[end:]
    path.write_text("\n".join(new).rstrip("\n") + "\n")


def write_keeping_other_sections(path: Path, document: str) -> None:
    """Write ``document`` to ``path``, then append every ``## `` section the old file had
    that ``document`` lacks (another benchmark's: results/ is not committed, so the file
    itself is where they live)."""
    def sections(text: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for chunk in ("\n" + text).split("\n## ")[1:]:
            heading = "## " + chunk.split("\n", 1)[0]
            out.append((heading, "## " + chunk.rstrip("\n")))
        return out

    old = path.read_text() if path.exists() else ""
    have = {heading for heading, _ in sections(document)}
    kept = [body for heading, body in sections(old) if heading not in have]
    path.write_text("\n\n".join([document.rstrip("\n"), *kept]).rstrip("\n") + "\n")
