"""Running a broker as a process: uvloop, signal handling, the readiness line.

SIGTERM and SIGINT trigger a graceful stop; the process exits 0 once logs are flushed and
checkpointed. The "listening on" line is printed only when the port accepts connections, so
scripts and tests can wait for it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import uvloop

from klamm.zk.config import ZkConfig
from klamm.zk.server import ZkServer

from .config import BrokerConfig
from .server import BrokerServer


async def serve(config: BrokerConfig, explicit_keys: frozenset[str] = frozenset(),
                zk_config: ZkConfig | None = None) -> None:
    """Serve until SIGTERM/SIGINT; with ``zk_config`` the coordination service runs in this
    process too (started first, stopped last), as ``klamm standalone --zk-listen`` asks."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    zk: ZkServer | None = None
    if zk_config is not None:
        zk = ZkServer(zk_config)
        try:
            await zk.start()
        except (RuntimeError, OSError) as exc:  # data dir in use, port taken
            print(f"error: cannot start the coordination service: {exc}", file=sys.stderr)
            sys.exit(1)
        print(f"klamm zk listening on {zk_config.host}:{zk.port} "
              f"(data in {zk_config.data_dir})", flush=True)
    server = BrokerServer(config, explicit_config_keys=explicit_keys)
    try:
        await server.start()
        print(f"klamm broker {config.broker_id} listening on {config.host}:{server.port} "
              f"(data in {config.log_dir})", flush=True)
        await stop.wait()
        print("klamm broker shutting down", flush=True)
        await server.stop()
    finally:
        if zk is not None:
            await zk.stop()


def run(config: BrokerConfig, explicit_keys: frozenset[str] = frozenset(),
        zk_config: ZkConfig | None = None) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvloop.run(serve(config, explicit_keys, zk_config))
