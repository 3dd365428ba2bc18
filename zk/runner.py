"""Run a coordination server in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import errno
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
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            reason = (f"cannot listen on {config.host}:{config.port}: the port is in use by "
                      f"another process; stop it, or pick another port with --listen "
                      f"HOST:PORT")
        elif isinstance(exc, OSError) and exc.filename:
            reason = f"cannot use {exc.filename}: {exc.strerror}"
        elif isinstance(exc, OSError):
            reason = f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
        else:
            reason = str(exc)
        print(f"error: cannot start the coordination service: {reason}", file=sys.stderr)
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
