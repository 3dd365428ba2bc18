"""A real cluster for tests: one coordination-service process and N broker processes, plus the
verifiable producer and consumer processes that serve as the oracle.

Timeouts are short (2 s sessions, 2 s replica lag) so failures are detected within a test's
patience; everything binds 127.0.0.1 on ephemeral ports, and a restarted process keeps its
port. Nothing here sleeps to synchronise: waits poll a condition with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from klamm.broker.log.files import LOG_SUFFIX, parse_segment_name
from klamm.client import Admin
from klamm.client.cluster import PartitionInfo
from tests.support.polling import until
from tests.support.processes import BrokerProcess
from tests.zk.processes import ZkProcess

FAST_CLUSTER: dict[str, object] = {
    "zookeeper.session.timeout.ms": 2000,
    "replica.lag.time.max.ms": 2000,
    "replica.fetch.backoff.ms": 100,
    "replica.socket.timeout.ms": 5000,
    "controller.socket.timeout.ms": 5000,
    "controlled.shutdown.retry.backoff.ms": 200,
    "min.insync.replicas": 2,
    "default.replication.factor": 3,
    "shutdown.timeout.ms": 5000,
    "log.flush.scheduler.interval.ms": 100,
}


class Cluster:
    def __init__(self, root: Path, size: int = 3, overrides: dict[str, object] | None = None,
                 chroot: str = "/klamm") -> None:
        self.root = root
        self.zk = ZkProcess(str(root / "zk"), 0, "min.session.timeout.ms=100",
                            "session.check.interval.ms=20")
        self.chroot = chroot
        self.overrides = {**FAST_CLUSTER, **(overrides or {})}
        self.brokers: dict[int, BrokerProcess] = {}
        self.size = size
        self.paused: set[int] = set()

    # ------------------------------------------------------------------ processes
    def start(self) -> "Cluster":
        self.zk.start()
        return self.start_brokers()

    def start_brokers(self, zk_of: dict[int, str] | None = None,
                      prefix_of: dict[int, list[str]] | None = None) -> "Cluster":
        """Start the brokers (at once); ``zk_of`` gives some of them another address of the
        coordination service (a proxy, say), ``prefix_of`` a command to run them through
        (one that mounts a filesystem of their own, say)."""
        for i in range(1, self.size + 1):
            hosts = (zk_of or {}).get(i, self.zk.hosts)
            self.brokers[i] = BrokerProcess(str(self.root / f"b{i}"), broker_id=i,
                                            zk=hosts + self.chroot, overrides=self.overrides,
                                            prefix=(prefix_of or {}).get(i, ()))
        for b in self.brokers.values():
            b.launch()
        for b in self.brokers.values():
            b.wait_ready()
        return self

    @property
    def bootstrap(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values())

    @property
    def live_bootstrap(self) -> str:
        """The brokers that run and are not paused (a paused one accepts connections and
        never answers: a client would wait out its request.timeout.ms on it)."""
        live = [b.bootstrap for i, b in self.brokers.items() if b.alive and i not in self.paused]
        return ",".join(live) or self.bootstrap

    def kill(self, broker: int) -> None:
        self.resume(broker)
        self.brokers[broker].kill()

    def terminate(self, broker: int, timeout: float = 60) -> int:
        self.resume(broker)
        return self.brokers[broker].terminate(timeout)

    def restart(self, broker: int) -> None:
        self.brokers[broker].start()

    def pause(self, broker: int) -> None:
        self.brokers[broker].signal(signal.SIGSTOP)
        self.paused.add(broker)

    def resume(self, broker: int) -> None:
        if broker in self.paused:
            self.brokers[broker].signal(signal.SIGCONT)
            self.paused.discard(broker)

    def stop(self) -> None:
        for broker in list(self.paused):
            self.resume(broker)
        for b in self.brokers.values():
            if b.alive:
                b.signal(signal.SIGTERM)
        for b in self.brokers.values():
            if b.proc is not None:
                try:
                    b.proc.wait(30)
                except subprocess.TimeoutExpired:
                    b.kill()
        self.zk.kill()

    def logs(self) -> str:
        return "\n".join(f"--- broker {i}:\n{b.log_text()[-6000:]}"
                         for i, b in self.brokers.items())

    # ------------------------------------------------------------------ state
    def admin(self) -> Admin:
        """An admin client of the brokers that run (not stopped, not paused)."""
        return Admin(bootstrap_servers=self.live_bootstrap, request_timeout_ms=5000)

    async def describe(self, topic: str) -> list[PartitionInfo]:
        async with self.admin() as admin:
            [desc] = await admin.describe_topics([topic])
        return desc.partitions

    async def controller(self) -> int:
        async with self.admin() as admin:
            return (await admin.describe_cluster()).controller_id

    async def wait_controller(self, check: Callable[[int], bool], timeout: float = 30) -> int:
        found: list[int] = []

        async def holds() -> bool:
            try:
                found[:] = [await self.controller()]
            except Exception:
                return False
            return found[0] in self.brokers and self.brokers[found[0]].alive and \
                check(found[0])
        await until(holds, timeout, interval=0.05)
        return found[0]

    async def leader(self, topic: str, partition: int = 0) -> int:
        return (await self.describe(topic))[partition].leader

    async def wait_for(self, topic: str, check: Callable[[list[PartitionInfo]], bool],
                       timeout: float = 30) -> list[PartitionInfo]:
        seen: list[list[PartitionInfo]] = []

        async def holds() -> bool:
            try:
                parts = await self.describe(topic)
            except Exception:
                return False
            seen[:] = [parts]
            return check(parts)
        try:
            await until(holds, timeout, interval=0.05)
        except AssertionError:
            raise AssertionError(f"{topic} never reached the state; last seen {seen}\n"
                                 f"{self.logs()}") from None
        return seen[0]

    async def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 3,
                           configs: dict[str, Any] | None = None) -> None:
        from klamm.client import NewTopic

        async with self.admin() as admin:
            await admin.create_topics([NewTopic(name, partitions, replication_factor,
                                                configs or {})])
        await self.wait_for(name, lambda ps: all(len(p.isr) == len(p.replicas) for p in ps))

    def log_bytes(self, broker: int, topic: str, partition: int) -> bytes:
        """The partition's log on one broker: its segment files' bytes in offset order."""
        directory = self.root / f"b{broker}" / f"{topic}-{partition}"
        proc = self.brokers.get(broker)
        if proc is not None and proc.prefix and proc.proc is not None and proc.alive:
            # a broker with a mount of its own: its files as its mount namespace sees them
            directory = Path(f"/proc/{proc.proc.pid}/root") / str(directory).lstrip("/")
        segments = []
        for name in os.listdir(directory):
            parsed = parse_segment_name(name)
            if parsed is not None and parsed[1] == LOG_SUFFIX:
                segments.append((parsed[0], directory / name))
        return b"".join(path.read_bytes() for _, path in sorted(segments))

    async def in_sync(self, topic: str, timeout: float = 60) -> list[PartitionInfo]:
        """Every partition is led and has every replica in its ISR."""
        return await self.wait_for(
            topic, lambda ps: all(p.leader >= 0 and sorted(p.isr) == sorted(p.replicas)
                                  for p in ps), timeout)

    async def settled(self, topic: str, partitions: int = 1, timeout: float = 60) -> None:
        """Every partition has every replica in its ISR and byte-identical logs (call once
        nothing produces any more)."""
        parts = await self.in_sync(topic, timeout)

        def identical() -> bool:
            for p in parts[:partitions]:
                logs = {self.log_bytes(b, topic, p.partition) for b in p.replicas}
                if len(logs) != 1:
                    return False
            return True
        try:
            await until(identical, timeout, interval=0.05)
        except AssertionError:
            sizes = {(p.partition, b): len(self.log_bytes(b, topic, p.partition))
                     for p in parts for b in p.replicas}
            raise AssertionError(f"replica logs of {topic} differ: sizes {sizes}\n"
                                 f"{self.logs()}") from None


class JsonLinesProcess:
    """A verifiable tool's process; its JSON lines are parsed as they arrive."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "klamm.broker.cli", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.events: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._lock = threading.Lock()
        self._readers = [threading.Thread(target=self._pump, daemon=True),
                         threading.Thread(target=self._pump_err, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                self.events.append(event)
            self.on_event(event)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)

    def on_event(self, event: dict[str, Any]) -> None:
        pass

    def named(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["name"] == name]

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def wait_exit(self, timeout: float = 60) -> int:
        rc = self.proc.wait(timeout)
        for reader in self._readers:  # they end at the end of the output
            reader.join(timeout)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


class VerifiableProducer(JsonLinesProcess):
    def __init__(self, bootstrap: str, topic: str, *, max_messages: int = -1,
                 throughput: float = -1, acks: str = "all", value_prefix: str | None = None,
                 **properties: object) -> None:
        args = ["verifiable-producer", topic, "-b", bootstrap, "--max-messages",
                str(max_messages), "--throughput", str(throughput), "--acks", acks]
        if value_prefix:
            args += ["--value-prefix", value_prefix]
        for key, value in properties.items():
            args += ["--producer-property", f"{key.replace('_', '.')}={value}"]
        self.acked: dict[str, tuple[int, int]] = {}
        self.failed: list[dict[str, Any]] = []
        super().__init__(args)

    def on_event(self, event: dict[str, Any]) -> None:
        if event["name"] == "producer_send_success":
            self.acked[event["value"]] = (event["partition"], event["offset"])
        elif event["name"] == "producer_send_error":
            self.failed.append(event)

    async def wait_acked(self, count: int, timeout: float = 60) -> None:
        try:
            await until(lambda: len(self.acked) >= count, timeout, interval=0.02)
        except AssertionError:
            raise AssertionError(f"only {len(self.acked)} of {count} acknowledged; failures "
                                 f"{self.failed[:3]}; stderr {''.join(self.stderr)[-3000:]}") \
                from None

    def tool_data(self) -> dict[str, Any]:
        found = self.named("tool_data")
        assert found, f"no tool_data; stderr {''.join(self.stderr)[-3000:]}"
        return found[-1]


class VerifiableConsumer(JsonLinesProcess):
    def __init__(self, bootstrap: str, topic: str, *, timeout_ms: int | None = None,
                 **properties: object) -> None:
        args = ["verifiable-consumer", topic, "-b", bootstrap, "--verbose"]
        if timeout_ms is not None:
            args += ["--timeout-ms", str(timeout_ms)]
        for key, value in properties.items():
            args += ["--consumer-property", f"{key.replace('_', '.')}={value}"]
        self.records: dict[tuple[int, int], str] = {}
        super().__init__(args)

    def on_event(self, event: dict[str, Any]) -> None:
        if event["name"] == "record_data":
            self.records[(event["partition"], event["offset"])] = event["value"]

    def wait_done(self, timeout: float = 120) -> dict[tuple[int, int], str]:
        rc = self.wait_exit(timeout)
        assert rc == 0, f"verifiable consumer exited {rc}: {''.join(self.stderr)[-3000:]}"
        return self.records


def read_everything(bootstrap: str, topic: str, idle_ms: int = 3000) -> dict[tuple[int, int], str]:
    """Every committed record of ``topic`` as {(partition, offset): value}."""
    return VerifiableConsumer(bootstrap, topic, timeout_ms=idle_ms).wait_done()


def assert_no_loss(acked: dict[str, tuple[int, int]], final: dict[tuple[int, int], str],
                   seen_before: dict[tuple[int, int], str] | None = None) -> None:
    """Kafka's oracle: every acknowledged value is read back where it was acknowledged,
    offsets are dense per partition, and nothing read earlier has gone missing since."""
    missing = {v: where for v, where in acked.items() if final.get(where) != v}
    assert not missing, f"{len(missing)} acknowledged value(s) lost, e.g. " \
                        f"{sorted(missing.items())[:5]}"
    by_partition: dict[int, list[int]] = {}
    for partition, offset in final:
        by_partition.setdefault(partition, []).append(offset)
    for partition, offsets in by_partition.items():
        offsets.sort()
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), \
            f"partition {partition} has gaps in its offsets"
        assert offsets[0] == 0, f"partition {partition} starts at {offsets[0]}"
    if seen_before:
        vanished = {w: v for w, v in seen_before.items() if final.get(w) != v}
        assert not vanished, f"{len(vanished)} record(s) read earlier are gone, e.g. " \
                             f"{sorted(vanished.items())[:5]}"
