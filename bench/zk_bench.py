"""Coordination service benchmark: a real ``python -m klamm.zk`` process (fsync on every
group commit) driven by ``ZkClient``s in this process.

Usage (from the repository root)::

    python bench/zk_bench.py            # ~40 s
    python bench/zk_bench.py --quick    # shorter runs

Measures create and set writes/s (acknowledged only after fsync) and get reads/s, with one
client and with 16 concurrent clients (each one request at a time, like ZooKeeper's sync
API), plus the time from a leader process's SIGKILL to a new leader with a 2 s session
timeout. Prints the numbers and writes bench/results/zk.json and bench/results/zk.md
(bench/run.py appends zk.md to BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvloop

from klamm.zk import LeaderElection, ZkClient

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
READY = re.compile(r"listening on (\S+):(\d+)")


class Server:
    def __init__(self, data_dir: str) -> None:
        self.data_dir = data_dir
        self.port = 0
        self._ready = threading.Event()
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> "Server":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "klamm.zk", "--listen", "127.0.0.1:0", "--data-dir",
             self.data_dir], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._ready.wait(60):
            raise RuntimeError("zk server did not start")
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            m = READY.search(line)
            if m:
                self.port = int(m.group(2))
                self._ready.set()

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(60)

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"


async def workload(hosts: str, op: str, clients: int, seconds: float) -> dict[str, float]:
    """Each client issues ``op`` back to back for ``seconds``; returns ops/s and latency."""
    zks = [ZkClient(hosts, session_timeout_ms=10000) for _ in range(clients)]
    for z in zks:
        await z.start()
    base = f"/bench-{op}-{clients}"
    await zks[0].create(base, makepath=True)
    for n in range(clients):
        await zks[0].create(f"{base}/c{n}", b"x" * 100)
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def run(n: int, z: ZkClient) -> int:
        done = 0
        path = f"{base}/c{n}"
        payload = b"y" * 100
        while time.monotonic() < stop:
            t = time.perf_counter()
            if op == "create":
                await z.create(f"{path}/n-", payload, sequential=True)
            elif op == "set":
                await z.set(path, payload)
            else:
                await z.get(path)
            latencies.append(time.perf_counter() - t)
            done += 1
        return done

    start = time.monotonic()
    counts = await asyncio.gather(*(run(n, z) for n, z in enumerate(zks)))
    elapsed = time.monotonic() - start
    for z in zks:
        await z.close()
    latencies.sort()
    total = sum(counts)
    return {"ops": total, "seconds": round(elapsed, 3), "ops_per_sec": total / elapsed,
            "latency_ms_p50": latencies[len(latencies) // 2] * 1000,
            "latency_ms_p99": latencies[int(len(latencies) * 0.99)] * 1000}


async def leader_handover(hosts: str, timeout_ms: int, rounds: int) -> dict[str, Any]:
    """SIGKILL a leader process; time until a waiting candidate in this process leads."""
    times = []
    for i in range(rounds):
        path = f"/bench-election-{i}"
        leader = subprocess.Popen([sys.executable, __file__, "--elect-child", hosts, path,
                                   str(timeout_ms)], stdout=subprocess.PIPE, text=True)
        assert leader.stdout is not None
        line = await asyncio.to_thread(leader.stdout.readline)
        if line.strip() != "leader":
            raise RuntimeError(f"leader process said {line!r}")
        candidate = ZkClient(hosts, session_timeout_ms=timeout_ms)
        await candidate.start()
        election = LeaderElection(candidate, path, b"candidate")
        campaign = asyncio.ensure_future(election.campaign())
        await asyncio.sleep(0.2)  # let the candidate register its watch
        assert not campaign.done()
        killed = time.monotonic()
        leader.send_signal(signal.SIGKILL)
        await campaign
        times.append(time.monotonic() - killed)
        leader.wait()
        await candidate.close()
    return {"session_timeout_ms": timeout_ms, "rounds": rounds,
            "seconds_mean": statistics.mean(times), "seconds_min": min(times),
            "seconds_max": max(times)}


async def elect_child(hosts: str, path: str, timeout_ms: int) -> None:
    client = ZkClient(hosts, session_timeout_ms=timeout_ms)
    await client.start()
    await LeaderElection(client, path, b"child").campaign()
    print("leader", flush=True)
    await asyncio.Event().wait()


def machine() -> dict[str, str]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": str(os.cpu_count()), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d")}


def render(results: dict[str, Any]) -> str:
    lines = ["## Coordination service (klamm.zk)", "",
             "Generated by `python bench/zk_bench.py`. One `python -m klamm.zk` process; "
             "clients in one other process on loopback. Every write is acknowledged only "
             "after its transaction-log record is fsynced (group commit: one fsync per batch "
             "of writes that arrived meanwhile) on the local disk. Each client sends one "
             "request at a time; all clients share one Python process, so the 16-client rows "
             "are partly bound by client CPU on this 2-core machine.", "",
             "| operation | clients | ops/s | latency p50 / p99 (ms) |", "|---|---:|---:|---|"]
    for row in results["rows"]:
        r = row["result"]
        lines.append(f"| {row['op']} | {row['clients']} | {r['ops_per_sec']:,.0f} | "
                     f"{r['latency_ms_p50']:.2f} / {r['latency_ms_p99']:.2f} |")
    h = results["handover"]
    lines += ["", f"Leader death to new leader (SIGKILL of the leader's process, "
              f"{h['session_timeout_ms']} ms session timeout, {h['rounds']} rounds): "
              f"mean {h['seconds_mean']:.2f} s, min {h['seconds_min']:.2f} s, "
              f"max {h['seconds_max']:.2f} s. It is bounded by the session timeout: the server "
              "deletes the dead leader's ephemeral node one timeout after it last heard from "
              "it (heartbeats every third of the timeout), and the waiting candidate's watch "
              "fires then."]
    return "\n".join(lines) + "\n"


async def main_async(quick: bool) -> dict[str, Any]:
    seconds = 1.5 if quick else 4.0
    rows = []
    with tempfile.TemporaryDirectory(prefix="klamm-zk-bench-", dir=ROOT / "bench") as tmp:
        with Server(tmp) as server:
            for op in ("create", "set", "get"):
                for clients in (1, 16):
                    result = await workload(server.hosts, op, clients, seconds)
                    rows.append({"op": op, "clients": clients, "result": result})
                    print(f"{op:6} {clients:2} client(s): {result['ops_per_sec']:10,.0f} ops/s"
                          f"  p50 {result['latency_ms_p50']:.2f} ms"
                          f"  p99 {result['latency_ms_p99']:.2f} ms", flush=True)
            handover = await leader_handover(server.hosts, 2000, 2 if quick else 3)
            print(f"leader handover (2 s session): mean {handover['seconds_mean']:.2f} s, "
                  f"min {handover['seconds_min']:.2f} s, max {handover['seconds_max']:.2f} s",
                  flush=True)
    return {"machine": machine(), "rows": rows, "handover": handover}


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--elect-child":
        uvloop.run(elect_child(sys.argv[2], sys.argv[3], int(sys.argv[4])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    results = uvloop.run(main_async(args.quick))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "zk.json").write_text(json.dumps(results, indent=1) + "\n")
    (RESULTS / "zk.md").write_text(render(results))
    print(f"wrote {RESULTS / 'zk.json'} and {RESULTS / 'zk.md'}")


if __name__ == "__main__":
    main()
