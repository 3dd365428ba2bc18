"""Broker benchmarks: a real broker process driven by ``klamm perf``; writes BENCHMARKS.md.

Usage (from the repository root, after ``pip install -e .``)::

    python bench/run.py              # full set, 3 runs of each workload, ~6 minutes on 2 cores
    python bench/run.py --quick      # smaller runs, once each, for a smoke check

Every workload runs the same CLI a user would run; the table shows the median run and the
range of all runs, because a shared virtual machine varies a lot from run to run. Two facts
of the machine are measured first, as ceilings to read the results against: how fast a
single thread can write fresh pages into the page cache (the broker's append is that write),
and the round trip of a minimal asyncio echo between two processes on loopback. Results are
kept as JSON in bench/results/broker.json; the zk benchmark's results (bench/zk_bench.py)
and the cluster benchmark's (bench/cluster_bench.py) are merged into BENCHMARKS.md when present,
and every other section already in BENCHMARKS.md (written by another benchmark) is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import (RESULTS, ROOT, ServerProcess, machine, set_affinity, split_cpus,
                    write_keeping_other_sections)

@dataclass
class Workload:
    name: str
    target: str
    args: list[str]
    setup: list[list[str]] | None = None
    latency_target: bool = False  # judged by p99 latency, not throughput
    pinned: bool = True  # broker and client on CPUs of their own (when the run pins at all)


def page_cache_write_mb_s(directory: str, size: int = 1 << 30) -> float:
    """Write ``size`` bytes in 256 KiB writes to a new file, as a log append does."""
    path = os.path.join(directory, "page-cache-probe")
    chunk = os.urandom(256 * 1024)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        start = time.perf_counter()
        written = 0
        while written < size:
            written += os.write(fd, chunk)
        return written / (time.perf_counter() - start) / 1e6
    finally:
        os.close(fd)
        os.unlink(path)


ECHO = """
import asyncio, sys, time
import uvloop

class Echo(asyncio.Protocol):
    def connection_made(self, transport): self.transport = transport
    def data_received(self, data): self.transport.write(data)

async def serve():
    server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)

async def ping(port, count):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rtts = []
    for _ in range(count):
        await asyncio.sleep(0.001)  # like a 1,000 records/s stream: the peer has gone idle
        start = time.perf_counter()
        writer.write(b"x" * 100)
        await reader.readexactly(100)
        rtts.append((time.perf_counter() - start) * 1000)
    rtts.sort()
    print(rtts[len(rtts) // 2], rtts[int(len(rtts) * 0.99)])

if sys.argv[1] == "serve":
    uvloop.run(serve())
else:
    uvloop.run(ping(int(sys.argv[2]), int(sys.argv[3])))
"""


def loopback_rtt_ms(server_cpus: set[int] | None, client_cpus: set[int] | None,
                    count: int = 3000) -> tuple[float, float]:
    """p50 and p99 round trip of 100 bytes between two uvloop processes, 1,000 per second,
    placed on CPUs as the broker and its clients are."""
    server = subprocess.Popen([sys.executable, "-c", ECHO, "serve"], stdout=subprocess.PIPE,
                              text=True)
    if server_cpus is not None:
        set_affinity(server.pid, server_cpus)
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        out = run_pinned([sys.executable, "-c", ECHO, "ping", port, str(count)], client_cpus,
                         timeout=120)
        p50, p99 = (float(x) for x in out.split())
        return p50, p99
    finally:
        server.kill()
        server.wait()


def klamm(*args: str) -> list[str]:
    return [sys.executable, "-m", "klamm.broker.cli", *args]


def run_pinned(cmd: list[str], cpus: set[int] | None, timeout: float) -> str:
    """Run ``cmd`` on ``cpus`` (pinned before the interpreter starts a thread); its stdout."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if cpus is not None:
        set_affinity(proc.pid, cpus)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed:\n{out}\n{err}")
    return out


def run_json(cmd: list[str], cpus: set[int] | None, timeout: float = 900) -> dict[str, float]:
    return json.loads(run_pinned(cmd, cpus, timeout).strip().splitlines()[-1])


def workloads(quick: bool) -> list[Workload]:
    n100 = 500_000 if quick else 3_000_000
    n1k = 200_000 if quick else 1_048_576  # 1 GiB of 1 KiB records
    e2e = 2_000 if quick else 10_000
    return [
        Workload("produce 100 B records, acks=1, send() per record", ">= 400,000 records/s",
                 ["perf", "produce", "p100", "--num-records", str(n100), "--record-size", "100",
                  "--acks", "1", "--json"], [["topics", "create", "p100", "--partitions", "1"]]),
        Workload("produce 1 KiB records, acks=1", ">= 250 MB/s",
                 ["perf", "produce", "p1k", "--num-records", str(n1k), "--record-size", "1024",
                  "--acks", "1", "--json"], [["topics", "create", "p1k", "--partitions", "1"]]),
        Workload("consume 100 B records from the start of a partition", ">= 1,500,000 records/s",
                 ["perf", "consume", "p100", "--num-records", str(n100), "--json"]),
        Workload("consume 1 KiB records" + ("" if quick else " (1 GiB)"), ">= 600 MB/s",
                 ["perf", "consume", "p1k", "--num-records", str(n1k), "--json"]),
        Workload("end-to-end latency at 1,000 records/s, acks=1", "p50 <= 1 ms, p99 <= 3 ms",
                 ["perf", "e2e", "lat", "--num-records", str(e2e), "--throughput", "1000",
                  "--record-size", "100", "--json"],
                 [["topics", "create", "lat", "--partitions", "1"]], latency_target=True),
        Workload("end-to-end latency at 1,000 records/s, acks=1, processes not pinned",
                 "(for comparison)",
                 ["perf", "e2e", "lat", "--num-records", str(e2e), "--throughput", "1000",
                  "--record-size", "100", "--json"], latency_target=True, pinned=False),
    ]


def _cpu_list(cpus: set[int] | None) -> str:
    return ",".join(map(str, sorted(cpus or ())))


def median_run(results: list[dict[str, float]], key: str) -> dict[str, float]:
    """The run whose ``key`` is the median (lower median for an even count)."""
    ordered = sorted(results, key=lambda r: r[key])
    return ordered[(len(ordered) - 1) // 2]


def render(info: dict[str, str], rows: list[dict[str, object]], command: str) -> str:
    lines = ["# Benchmarks", "",
             f"Generated by `{command}` on {info['date']}. Do not edit by hand: rerun the script.",
             "", "## Machine", "",
             f"- CPU: {info['cpu']} ({info['cores']} cores)", f"- Memory: {info['memory']}",
             f"- Kernel: {info['kernel']}", f"- Python: {info['python']}",
             f"- Page cache write of fresh pages, one thread, 256 KiB writes: "
             f"{float(info['page_cache_mb_s']):,.0f} MB/s (the broker's append costs at least "
             f"this; on this virtual machine the host backs guest memory lazily, so pages the "
             f"guest has not touched recently cost several times more than reused ones; the "
             f"probe runs first and frees its pages, which the broker's first GiB then reuses)",
             "- A shared virtual machine: identical runs differ by up to about 40%.",
             f"- Loopback round trip, 100 bytes between two uvloop processes at 1,000/s: "
             f"p50 {float(info['rtt_p50_ms']):.3f} ms, p99 {float(info['rtt_p99_ms']):.3f} ms "
             f"(the floor under each hop of the end-to-end latency)",
             "- One broker process and one client process on loopback; the broker's data dir is "
             "on the local disk (page cache, no fsync per batch: the default flush policy).",
             f"- CPU placement: {info.get('pinning', 'none')}"
             + ("" if info.get("pinning", "none") == "none" else
                " (pinned with sched_setaffinity, as broker and clients on separate machines "
                "would be: left to itself the scheduler often wakes a client on the CPU the "
                "broker is still busy on, and one then waits out the other's time slice; the "
                "last row shows end-to-end latency with nothing pinned)") + ".",
             f"- Each workload ran {info['repeat']} time(s); the table shows the median run "
             f"(by records/s, or by p99 for latency) and the range of records/s over all runs.",
             "- Producer latency is send() to acknowledgement with an unthrottled producer, so it "
             "is mostly time spent queued in buffer.memory.",
             "", "## Broker and clients", "",
             "| workload | target | records/s (median) | range of runs | MB/s | "
             "latency p50 / p99 / max (ms) | command |",
             "|---|---|---:|---:|---:|---|---|"]
    for r in rows:
        runs = r["runs"]
        assert isinstance(runs, list)
        latency = bool(r.get("latency_target"))
        res = median_run(runs, "latency_ms_p99" if latency else "records_per_sec")
        rates = sorted(run["records_per_sec"] for run in runs)
        spread = f"{rates[0]:,.0f} – {rates[-1]:,.0f}" if len(rates) > 1 else "-"
        lat = (f"{res.get('latency_ms_p50', 0):.2f} / {res.get('latency_ms_p99', 0):.2f} / "
               f"{res.get('latency_ms_max', 0):.2f}") if res.get("latency_ms_max") else "-"
        if latency and len(runs) > 1:
            p99s = sorted(run["latency_ms_p99"] for run in runs)
            spread = f"p99 {p99s[0]:.2f} – {p99s[-1]:.2f} ms"
        lines.append(f"| {r['name']} | {r['target']} | {res['records_per_sec']:,.0f} | "
                     f"{spread} | {res['mb_per_sec']:,.1f} | {lat} | `{r['command']}` |")
    for part in ("cluster.md", "zk.md"):  # written by cluster_bench.py and zk_bench.py
        if (RESULTS / part).exists():
            lines += ["", (RESULTS / part).read_text().strip()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--repeat", type=int, default=0,
                        help="runs of each workload (default 3, or 1 with --quick)")
    parser.add_argument("--no-pin", action="store_true",
                        help="let the scheduler place the broker and the clients on any CPU")
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite the output from bench/results without running anything")
    opts = parser.parse_args()
    if opts.render_only:
        saved = json.loads((RESULTS / "broker.json").read_text())
        write_keeping_other_sections(Path(opts.output), render(saved["machine"], saved["rows"],
                                                               saved["command"]))
        return
    info = machine()
    repeat = opts.repeat or (1 if opts.quick else 3)
    info["repeat"] = str(repeat)
    broker_cpus, client_cpus = (None, None) if opts.no_pin else split_cpus()
    info["pinning"] = "none" if broker_cpus is None else \
        f"broker on CPU {_cpu_list(broker_cpus)}, clients on CPU {_cpu_list(client_cpus)}"
    rows: list[dict[str, object]] = []
    data_dir = tempfile.mkdtemp(prefix="klamm-bench-")
    try:
        info["page_cache_mb_s"] = f"{page_cache_write_mb_s(data_dir):.0f}"
        p50, p99 = loopback_rtt_ms(broker_cpus, client_cpus)
        info["rtt_p50_ms"], info["rtt_p99_ms"] = f"{p50:.4f}", f"{p99:.4f}"
        print(f"machine: {json.dumps(info)}", flush=True)
        with ServerProcess("klamm.broker.cli", data_dir, broker_cpus,
                           args=("standalone",)) as broker:
            assert broker.proc is not None
            for w in workloads(opts.quick):
                if broker_cpus is None and not w.pinned:
                    continue  # the same as the pinned row when nothing is pinned
                for setup in w.setup or []:
                    subprocess.run(klamm(*setup, "-b", broker.address), check=True,
                                   capture_output=True)
                cmd = klamm(*w.args, "-b", broker.address)
                set_affinity(broker.proc.pid, broker_cpus if w.pinned else None)
                runs = []
                for i in range(repeat):
                    print(f"running: {w.name} ({i + 1}/{repeat})", flush=True)
                    runs.append(run_json(cmd, client_cpus if w.pinned else None))
                    print(f"  {json.dumps(runs[-1])}", flush=True)
                rows.append({"name": w.name, "target": w.target,
                             "command": "klamm " + shlex.join(w.args), "runs": runs,
                             "latency_target": w.latency_target})
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = "python bench/run.py" + (" --quick" if opts.quick else "") + \
        (f" --repeat {opts.repeat}" if opts.repeat else "")
    (RESULTS / "broker.json").write_text(json.dumps({"machine": info, "rows": rows,
                                                     "command": command}, indent=1))
    write_keeping_other_sections(Path(opts.output), render(info, rows, command))
    print(f"wrote {opts.output}")


if __name__ == "__main__":
    main()
