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

from .config import BrokerConfig
from .server import BrokerServer


async def serve(config: BrokerConfig, explicit_keys: frozenset[str] = frozenset()) -> None:
    server = BrokerServer(config, explicit_config_keys=explicit_keys)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    print(f"klamm broker {config.broker_id} listening on {config.host}:{server.port} "
          f"(data in {config.log_dir})", flush=True)
    await stop.wait()
    print("klamm broker shutting down", flush=True)
    await server.stop()


def run(config: BrokerConfig, explicit_keys: frozenset[str] = frozenset()) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvloop.run(serve(config, explicit_keys))
