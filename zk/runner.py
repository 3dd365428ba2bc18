"""Run a coordination server in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import uvloop

from .config import ZkConfig
from .server import ZkServer


async def serve(config: ZkConfig) -> None:
    server = ZkServer(config)
    try:
        await server.start()
    except (RuntimeError, OSError) as exc:  # data dir in use or unreadable, port taken
        print(f"error: cannot start the coordination service: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"klamm zk listening on {config.host}:{server.port} (data in {config.data_dir})",
          flush=True)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopped = loop.create_task(server.stopped.wait())
    waiter = loop.create_task(stop.wait())
    await asyncio.wait({stopped, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    stopped.cancel()
    await server.stop()


def run(config: ZkConfig) -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvloop.run(serve(config))
