"""Cluster benchmarks: one coordination service and three brokers, all on this machine.

Usage (from the repository root, after ``pip install -e .``)::

    .venv/bin/python bench/cluster_bench.py           # ~10 minutes on 2 cores
    .venv/bin/python bench/cluster_bench.py --quick   # smaller runs, for a smoke check

What it measures, in one run, every process sharing every CPU (as users run a cluster on one
box; nothing is pinned):

- producer throughput, 100 B and 1 KiB records: a replication factor 3 topic with
  ``acks=all`` (min.insync.replicas 2) against a replication factor 1 topic with ``acks=1``,
  the two alternating run by run so a drift of the machine hits both;
- end-to-end latency at 1,000 records/s, the same two set-ups;
- failover: SIGKILL of a partition's leader while a producer sends with ``acks=all``, to the
  first acknowledgement of a record sent after the kill (session timeout 2 s);
- controller SIGKILL with 1,000 partitions (RF 3) to every partition led again;
- controlled shutdown (SIGTERM) of a broker that leads 1,000 partitions to all of them led by
  other brokers, and to the process's exit.

Results go to bench/results/cluster.json and cluster.md, and the section replaces the
"## Cluster" section of BENCHMARKS.md (bench/run.py keeps it when it rewrites the file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import RESULTS, ROOT, ServerProcess, machine, replace_section

from klamm.client import Admin, NewTopic, Producer
from klamm.client.connection import BrokerConnection
from klamm.protocol.api import ApiKey

SESSION_MS = 2000
BROKER_OVERRIDES = {
    "zookeeper.session.timeout.ms": SESSION_MS,
    "replica.lag.time.max.ms": 10_000,
    "min.insync.replicas": 2,
    "default.replication.factor": 3,
    "num.partitions": 1,
    "auto.create.topics.enable": "false",
}


class LocalCluster:
    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        self.zk = ServerProcess("klamm.zk", str(root / "zk"))
        self.brokers: dict[int, ServerProcess] = {}
        self.size = size

    def start(self) -> "LocalCluster":
        self.zk.start()
        extra: list[str] = ["--zk", f"127.0.0.1:{self.zk.port}/bench"]
        for key, value in BROKER_OVERRIDES.items():
            extra += ["--override", f"{key}={value}"]
        for i in range(1, self.size + 1):
            self.brokers[i] = ServerProcess("klamm.broker", str(self.root / f"b{i}"),
                                            args=("--broker-id", str(i)), extra=tuple(extra))
        for b in self.brokers.values():
            b.start()
        return self

    def stop(self) -> None:
        for b in self.brokers.values():
            if b.proc is not None and b.proc.poll() is None:
                b.proc.terminate()
        for b in self.brokers.values():
            b.stop()
        self.zk.kill()

    def bootstrap(self, *, without: int | None = None) -> str:
        return ",".join(b.address for i, b in self.brokers.items() if i != without)


def klamm(*args: str) -> list[str]:
    return [sys.executable, "-m", "klamm.broker.cli", *args]


def run_json(args: list[str], timeout: float = 900) -> dict[str, Any]:
    proc = subprocess.run(klamm(*args), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"klamm {shlex.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


async def create(bootstrap: str, name: str, partitions: int, rf: int,
                 assignment: dict[int, list[int]] | None = None) -> None:
    async with Admin(bootstrap_servers=bootstrap) as admin:
        topic = NewTopic(name, partitions, rf) if assignment is None else \
            NewTopic(name, replica_assignment=assignment)
        await admin.create_topics([topic], timeout_ms=60_000)
    await wait_all_led(bootstrap, name, partitions, lambda leader: True, 60, full_isr=True)


async def wait_all_led(bootstrap: str, topic: str, partitions: int, ok: Any, timeout: float,
                       full_isr: bool = False) -> float:
    """Poll every broker of ``bootstrap`` until each one's metadata shows every partition
    with a leader ``ok`` accepts; the time it took. A broker hears of a change only after it
    has applied the controller's LeaderAndIsr for it, so a new leader that shows its own
    leadership is serving it."""
    start = time.perf_counter()

    async def settled(address: str) -> bool:
        host, port = address.rsplit(":", 1)
        conn = await BrokerConnection.open(host, int(port))
        try:
            response = await conn.request(ApiKey.METADATA, {"topics": [topic]}, timeout=2)
        finally:
            conn.close()
        parts = response.body["topics"][0].get("partitions", [])
        return len(parts) == partitions and all(
            p["leader"] >= 0 and ok(p["leader"]) and
            (not full_isr or len(p["isr"]) == len(p["replicas"])) for p in parts)

    while True:
        try:
            if all(await asyncio.gather(*(settled(a) for a in bootstrap.split(",")))):
                return time.perf_counter() - start
        except Exception:
            pass
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"{topic}: not every partition led after {timeout} s")
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------------- workloads
def throughput(cluster: LocalCluster, quick: bool, repeat: int) -> list[dict[str, Any]]:
    rows = []
    b = cluster.bootstrap()
    for size, count in ((100, 300_000 if quick else 2_000_000), (1024, 100_000 if quick else
                                                                 500_000)):
        setups = {"rf1": ["--acks", "1"], "rf3": ["--acks", "all"]}
        runs: dict[str, list[dict[str, Any]]] = {"rf1": [], "rf3": []}
        for i in range(repeat):
            for kind, acks in setups.items():
                topic = f"{kind}-{size}-{i}"
                asyncio.run(create(b, topic, 1, 1 if kind == "rf1" else 3))
                args = ["perf", "produce", topic, "--num-records", str(count), "--record-size",
                        str(size), *acks, "--json", "-b", b]
                print(f"running: {shlex.join(args[:-2])}", flush=True)
                runs[kind].append(run_json(args))
                print(f"  {json.dumps(runs[kind][-1])}", flush=True)
        rows.append({"size": size, "count": count, "runs": runs})
    return rows


def latency(cluster: LocalCluster, quick: bool, repeat: int) -> dict[str, list[dict[str, Any]]]:
    b = cluster.bootstrap()
    count = 3000 if quick else 10_000
    runs: dict[str, list[dict[str, Any]]] = {"rf1": [], "rf3": []}
    for i in range(repeat):
        for kind, acks in (("rf1", "1"), ("rf3", "all")):
            topic = f"lat-{kind}-{i}"
            asyncio.run(create(b, topic, 1, 1 if kind == "rf1" else 3))
            args = ["perf", "e2e", topic, "--num-records", str(count), "--throughput", "1000",
                    "--record-size", "100", "--acks", acks, "--json", "-b", b]
            print(f"running: {shlex.join(args[:-2])}", flush=True)
            runs[kind].append(run_json(args))
            print(f"  {json.dumps(runs[kind][-1])}", flush=True)
    return runs


async def _leader_of(bootstrap: str, topic: str) -> int:
    async with Admin(bootstrap_servers=bootstrap) as admin:
        [desc] = await admin.describe_topics([topic])
    return desc.partitions[0].leader


async def _failover_once(cluster: LocalCluster, topic: str) -> float:
    leader = await _leader_of(cluster.bootstrap(), topic)
    kill_at: list[float] = []
    first_after: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    async with Producer(bootstrap_servers=cluster.bootstrap(), acks="all", linger_ms=0,
                        request_timeout_ms=10_000, delivery_timeout_ms=60_000,
                        retry_backoff_ms=20) as producer:
        async def one(i: int) -> None:
            sent_at = time.perf_counter()
            await producer.send_and_wait(topic, b"%d" % i)
            if kill_at and sent_at > kill_at[0] and not first_after.done():
                first_after.set_result(time.perf_counter() - kill_at[0])

        pending: set[asyncio.Task[None]] = set()
        i = 0
        deadline = time.perf_counter() + 60
        while not first_after.done() and time.perf_counter() < deadline:
            task = asyncio.ensure_future(one(i))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += 1
            if i == 500:
                cluster.brokers[leader].kill()
                kill_at.append(time.perf_counter())
            await asyncio.sleep(0.002)
        result = await asyncio.wait_for(first_after, 5)
        await asyncio.gather(*pending, return_exceptions=True)
    cluster.brokers[leader].start()
    await wait_all_led(cluster.bootstrap(), topic, 1, lambda _: True, 60, full_isr=True)
    return result


def failover(cluster: LocalCluster, rounds: int) -> list[float]:
    asyncio.run(create(cluster.bootstrap(), "failover", 1, 3))
    out = []
    for _ in range(rounds):
        out.append(asyncio.run(_failover_once(cluster, "failover")))
        print(f"  leader SIGKILL to first ack: {out[-1]:.2f} s", flush=True)
    return out


async def _controller_of(bootstrap: str) -> int:
    async with Admin(bootstrap_servers=bootstrap) as admin:
        return (await admin.describe_cluster()).controller_id


def controller_failover(cluster: LocalCluster, partitions: int) -> dict[str, float]:
    asyncio.run(create(cluster.bootstrap(), "many", partitions, 3))
    controller = asyncio.run(_controller_of(cluster.bootstrap()))
    cluster.brokers[controller].kill()
    killed = time.perf_counter()
    rest = cluster.bootstrap(without=controller)
    led = asyncio.run(wait_all_led(rest, "many", partitions, lambda b: b != controller, 60))
    total = time.perf_counter() - killed
    print(f"  controller SIGKILL to {partitions} partitions led: {total:.2f} s", flush=True)
    cluster.brokers[controller].start()
    asyncio.run(wait_all_led(cluster.bootstrap(), "many", partitions, lambda _: True, 120,
                             full_isr=True))
    return {"seconds": total, "poll_seconds": led}


def controlled_shutdown(cluster: LocalCluster, partitions: int) -> dict[str, float]:
    controller = asyncio.run(_controller_of(cluster.bootstrap()))
    target = next(i for i in cluster.brokers if i != controller)
    others = [i for i in cluster.brokers if i != target]
    assignment = {p: [target, *others] for p in range(partitions)}
    asyncio.run(create(cluster.bootstrap(), "led-by-one", partitions, 3, assignment))
    proc = cluster.brokers[target].proc
    assert proc is not None
    rest = cluster.bootstrap(without=target)

    async def watch() -> float:
        return await wait_all_led(rest, "led-by-one", partitions, lambda b: b != target, 60)

    started = time.perf_counter()
    proc.terminate()
    moved = asyncio.run(watch())
    code = proc.wait(120)
    exited = time.perf_counter() - started
    print(f"  SIGTERM to {partitions} leaders moved: {moved:.2f} s, exit {code} after "
          f"{exited:.2f} s", flush=True)
    cluster.brokers[target].start()
    return {"moved_seconds": moved, "exit_seconds": exited, "exit_code": code}


def _profile_summary(raw: Path, top: int = 8) -> list[tuple[str, float]]:
    """Share of samples per innermost project or library function of a py-spy raw file."""
    leaf: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        frame = stack.split(";")[-1]
        leaf[frame] = leaf.get(frame, 0) + int(count)
    ranked = sorted(leaf.items(), key=lambda kv: -kv[1])[:top]
    return [(name, n / max(total, 1)) for name, n in ranked]


def profile(cluster: LocalCluster, quick: bool) -> str:
    """py-spy on the leader and one follower while RF 3 acks=all takes 1 KiB records."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        return "(py-spy not installed: no profile)"
    b = cluster.bootstrap()
    asyncio.run(create(b, "profiled", 1, 3))
    leader = asyncio.run(_leader_of(b, "profiled"))
    follower = next(i for i in cluster.brokers if i != leader)
    count = 150_000 if quick else 400_000
    load = subprocess.Popen(klamm("perf", "produce", "profiled", "--num-records", str(count),
                                  "--record-size", "1024", "--acks", "all", "-b", b),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # past the client's start-up, into the steady state
    outs = {}
    spies = []
    scratch = Path(tempfile.mkdtemp(prefix="klamm-profile-"))
    for role, broker in (("leader", leader), ("follower", follower)):
        proc = cluster.brokers[broker].proc
        assert proc is not None
        outs[role] = scratch / f"{role}.txt"
        spies.append(subprocess.Popen([py_spy, "record", "-p", str(proc.pid), "-d", "3",
                                       "-r", "100", "-f", "raw", "-o", str(outs[role])],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    for spy in spies:
        spy.wait(60)
    load.wait(300)
    lines = ["Profile (py-spy, 3 s at 100 Hz, during RF 3 acks=all 1 KiB produce; share of "
             "samples by innermost frame; time blocked in a system call counts as its caller, "
             "idle waits of the loop and thread pool appear as Runner.run and _worker):", ""]
    for role, path in outs.items():
        top = ", ".join(f"{name} {share:.0%}" for name, share in _profile_summary(path))
        lines.append(f"- {role}: {top}")
    shutil.rmtree(scratch, ignore_errors=True)
    return "\n".join(lines)


# ---------------------------------------------------------------------- report
def _median(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r[key])
    return ordered[(len(ordered) - 1) // 2]


def render(info: dict[str, str], results: dict[str, Any], command: str) -> str:
    lines = ["## Cluster (one coordination service, three brokers)", "",
             f"Generated by `{command}` on {info['date']}. Every process (the coordination "
             f"service, three brokers, the client) shares the machine's {info['cores']} CPUs; "
             f"nothing is pinned. Replication factor 3 topics have min.insync.replicas=2; "
             f"zookeeper.session.timeout.ms={SESSION_MS}. Each row ran {results['repeat']} "
             f"time(s), the two set-ups alternating; the median run is shown, with the range.",
             "", "| workload | RF 1, acks=1 | RF 3, acks=all | ratio | target |",
             "|---|---:|---:|---:|---|"]
    for row in results["throughput"]:
        cells = []
        for kind in ("rf1", "rf3"):
            runs = row["runs"][kind]
            med = _median(runs, "records_per_sec")
            rates = sorted(r["records_per_sec"] for r in runs)
            cells.append((med, f"{med['records_per_sec']:,.0f} rec/s, "
                               f"{med['mb_per_sec']:,.1f} MB/s (range {rates[0]:,.0f} – "
                               f"{rates[-1]:,.0f})"))
        ratio = cells[1][0]["records_per_sec"] / cells[0][0]["records_per_sec"]
        lines.append(f"| produce {row['size']} B records, {row['count']:,} per run | "
                     f"{cells[0][1]} | {cells[1][1]} | {ratio:.0%} | RF 3 >= 50 % of RF 1 |")
    lat = results["latency"]
    med = {k: _median(v, "latency_ms_p99") for k, v in lat.items()}
    for q, target in (("p50", 1.5), ("p99", 2.0)):
        key = f"latency_ms_{q}"
        ranges = {k: sorted(r[key] for r in v) for k, v in lat.items()}
        ratio = med["rf3"][key] / med["rf1"][key]
        lines.append(f"| end-to-end latency {q} at 1,000 records/s | {med['rf1'][key]:.2f} ms "
                     f"(range {ranges['rf1'][0]:.2f} – {ranges['rf1'][-1]:.2f}) | "
                     f"{med['rf3'][key]:.2f} ms (range {ranges['rf3'][0]:.2f} – "
                     f"{ranges['rf3'][-1]:.2f}) | {ratio:.2f}x | <= {target}x |")
    disk = []
    for row in results["throughput"]:
        rf1 = _median(row["runs"]["rf1"], "records_per_sec")["mb_per_sec"]
        rf3 = _median(row["runs"]["rf3"], "records_per_sec")["mb_per_sec"]
        disk.append(f"{row['size']} B: RF 1 {rf1:,.0f} MB/s, RF 3 3 x {rf3:,.0f} = "
                    f"{3 * rf3:,.0f} MB/s")
    lines += ["", "Bytes the disk takes per second (every replica of RF 3 lives on this one "
              "machine, so each record is written three times): " + "; ".join(disk) + "."]
    fo = results["failover"]
    cf = results["controller_failover"]
    cs = results["controlled_shutdown"]
    lines += ["", "| failure | measured | target |", "|---|---|---|",
              f"| leader SIGKILL to the first acknowledged acks=all send made after it "
              f"({len(fo)} rounds) | median {statistics.median(fo):.2f} s (min {min(fo):.2f}, "
              f"max {max(fo):.2f}) | <= 3 s |",
              f"| controller SIGKILL, {results['partitions']:,} partitions (RF 3), to every "
              f"partition led by a live broker | {cf['seconds']:.2f} s | <= 4 s |",
              f"| controlled shutdown (SIGTERM) of the broker leading {results['partitions']:,} "
              f"partitions: leaders moved | {cs['moved_seconds']:.2f} s (process exited "
              f"{cs['exit_code']} after {cs['exit_seconds']:.2f} s) | <= 2 s |",
              "", "Both failure times after a SIGKILL are bounded below by the session "
              "timeout: the dead broker's registration disappears one session timeout after "
              "it last heartbeat, and only then does the controller (or the election of a new "
              "controller) act."]
    if results.get("profile"):
        lines += ["", results["profile"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--repeat", type=int, default=0, help="runs per set-up (default 3)")
    parser.add_argument("--partitions", type=int, default=1000)
    parser.add_argument("--render-only", action="store_true")
    opts = parser.parse_args()
    # The failover rounds' producer retries while the leader is gone; its per-retry warnings
    # are not the measurement.
    logging.getLogger("klamm").setLevel(logging.ERROR)
    if opts.render_only:
        saved = json.loads((RESULTS / "cluster.json").read_text())
        (RESULTS / "cluster.md").write_text(render(saved["machine"], saved["results"],
                                                   saved["command"]))
        return
    repeat = opts.repeat or (1 if opts.quick else 3)
    info = machine()
    root = Path(tempfile.mkdtemp(prefix="klamm-cluster-bench-"))
    results: dict[str, Any] = {"repeat": repeat, "partitions": opts.partitions}
    cluster = LocalCluster(root).start()
    try:
        results["throughput"] = throughput(cluster, opts.quick, repeat)
        results["latency"] = latency(cluster, opts.quick, repeat)
        results["failover"] = failover(cluster, 3)
        results["controller_failover"] = controller_failover(cluster, opts.partitions)
        results["controlled_shutdown"] = controlled_shutdown(cluster, opts.partitions)
        results["profile"] = profile(cluster, opts.quick)
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    command = ".venv/bin/python bench/cluster_bench.py" + (" --quick" if opts.quick else "")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cluster.json").write_text(json.dumps({"machine": info, "results": results,
                                                      "command": command}, indent=1))
    section = render(info, results, command)
    (RESULTS / "cluster.md").write_text(section)
    replace_section(ROOT / "BENCHMARKS.md", section, "## Cluster")
    print(section)


if __name__ == "__main__":
    main()
