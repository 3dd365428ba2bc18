"""A minimal HTTP endpoint serving ``/metrics`` in Prometheus' text format.

prometheus_client's own server runs in a thread; this one runs on the broker's event loop so
the metrics it reads are never observed mid-update.
"""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST

from .metrics import BrokerMetrics

MAX_REQUEST_HEAD = 8192


async def serve_metrics(metrics: BrokerMetrics, host: str, port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            line = head.split(b"\r\n", 1)[0].split()
            if len(line) >= 2 and line[0] == b"GET" and line[1].split(b"?")[0] == b"/metrics":
                body = metrics.render()
                status = b"200 OK"
                ctype = CONTENT_TYPE_LATEST.encode()
            else:
                body, status, ctype = b"not found; try /metrics\n", b"404 Not Found", b"text/plain"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype +
                         b"\r\nContent-Length: " + str(len(body)).encode() +
                         b"\r\nConnection: close\r\n\r\n" + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port, limit=MAX_REQUEST_HEAD)
