"""Layering: klamm.zk stands alone (no broker, no Kafka client), and the election recipe needs
nothing from its client beyond the ``Coordination`` protocol an etcd backend would implement."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from klamm.zk import Coordination, LeaderElection
from tests.zk.conftest import ClientFactory

ZK_DIR = Path(__file__).resolve().parents[2] / "zk"
FORBIDDEN = ("klamm.broker", "klamm.client")


def test_importing_every_zk_module_loads_neither_broker_nor_client() -> None:
    code = (
        "import pkgutil, sys, klamm.zk\n"
        "for m in pkgutil.walk_packages(klamm.zk.__path__, 'klamm.zk.'):\n"
        "    __import__(m.name)\n"
        f"bad = sorted(n for n in sys.modules if n.startswith({FORBIDDEN!r}))\n"
        "print(len([n for n in sys.modules if n.startswith('klamm.zk.')]), bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split(maxsplit=1)
    assert int(out[0]) >= 15 and out[1].strip() == "[]", out


def test_no_zk_source_file_imports_broker_or_client() -> None:
    offenders = []
    for path in sorted(ZK_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level > 1:  # from ..x: leaves the zk package
                    names = [f"..{node.module}"]
                elif node.level == 0 and node.module:
                    names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names
                          if n.startswith(FORBIDDEN) or n.startswith("..")]
    assert offenders == []


class OnlyCoordination:
    """Forwards exactly the members of the Coordination protocol, nothing else."""

    MEMBERS = frozenset(name for name in dir(Coordination) if not name.startswith("_")) | {
        "session_id", "state"}

    def __init__(self, client: Any) -> None:
        object.__setattr__(self, "_client", client)

    def __getattr__(self, name: str) -> Any:
        if name not in self.MEMBERS:
            raise AttributeError(f"{name!r} is not part of the Coordination protocol")
        return getattr(object.__getattribute__(self, "_client"), name)


async def test_election_uses_nothing_beyond_the_coordination_protocol(
        zk: ClientFactory) -> None:
    assert {"start", "close", "create", "get", "set", "delete", "exists", "get_children",
            "multi", "add_listener", "session_events"} <= OnlyCoordination.MEMBERS
    a, b = OnlyCoordination(await zk()), OnlyCoordination(await zk())
    assert isinstance(a, Coordination)
    ea, eb = LeaderElection(a, "/ctl", b"a"), LeaderElection(b, "/ctl", b"b")  # type: ignore[arg-type]
    await ea.campaign()
    b_wins = asyncio.ensure_future(eb.campaign())
    await ea.resign()
    await asyncio.wait_for(b_wins, 5)
    assert eb.is_leader and await ea.leader() == b"b"
    lost = asyncio.ensure_future(eb.wait_lost())
    await b.close()
    await asyncio.wait_for(lost, 5)
    assert await ea.leader() is None
