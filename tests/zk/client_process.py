"""A coordination client in its own process, for tests that kill it with SIGKILL.

``python -m tests.zk.client_process HOST:PORT TIMEOUT_MS ephemeral PATH`` creates an ephemeral
node and prints ``ready``; ``... elect PATH ID`` campaigns and prints ``leader ID`` once it
leads. Then it runs until killed.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

from klamm.zk import LeaderElection, ZkClient


async def main(hosts: str, timeout_ms: int, mode: str, path: str, ident: str) -> None:
    client = ZkClient(hosts, session_timeout_ms=timeout_ms)
    await client.start()
    if mode == "ephemeral":
        await client.create(path, ident.encode(), ephemeral=True, makepath=True)
        print("ready", flush=True)
    else:
        election = LeaderElection(client, path, ident.encode())
        print("campaigning", flush=True)
        await election.campaign()
        print(f"leader {ident}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    args = sys.argv[1:]
    uvloop.run(main(args[0], int(args[1]), args[2], args[3], args[4] if len(args) > 4 else ""))
