"""Reading a broker's Prometheus endpoint (``metrics.port``) from a test."""

from __future__ import annotations

import asyncio


async def http_get(port: int, path: str) -> tuple[str, str]:
    """The status line and body of ``GET path``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = (await asyncio.wait_for(reader.read(), timeout=5)).decode()
    writer.close()
    head, _, body = data.partition("\r\n\r\n")
    return head.split("\r\n")[0], body


async def metric(port: int, name: str) -> float:
    """The value of the unlabelled sample ``name``."""
    _, body = await http_get(port, "/metrics")
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no sample {name} in the broker's metrics")
