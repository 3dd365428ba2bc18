"""A TCP proxy between a client and a server that can cut, stall or drop traffic on demand.

Fault injection as ordinary test code: ``cut()`` resets every proxied connection,
``stall(direction)`` holds bytes in one direction until ``resume``, ``drop(direction)`` discards
them silently (a lost response), ``refuse`` rejects new connections. Directions are
``"up"`` (client -> server) and ``"down"`` (server -> client).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["up", "down"]


@dataclass(eq=False)
class _Pipe:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._pipes: set[_Pipe] = set()
        self._flowing = {"up": asyncio.Event(), "down": asyncio.Event()}
        for ev in self._flowing.values():
            ev.set()
        self._dropping: set[str] = set()
        self.refusing = False
        self.port = 0
        self.connections_accepted = 0
        self.bytes = {"up": 0, "down": 0}

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> "FaultProxy":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> "FaultProxy":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def retarget(self, host: str, port: int) -> None:
        self.target = (host, port)

    # ---------------------------------------------------------------- faults
    def cut(self) -> None:
        """Reset every current connection (both sides see a reset)."""
        for pipe in list(self._pipes):
            for w in (pipe.client, pipe.server):
                sock = w.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        b"\x01\x00\x00\x00\x00\x00\x00\x00")
                w.transport.abort()
            for t in pipe.tasks:
                t.cancel()
        self._pipes.clear()

    def stall(self, direction: Direction) -> None:
        self._flowing[direction].clear()

    def resume(self, direction: Direction | None = None) -> None:
        for d in ([direction] if direction else ["up", "down"]):
            self._flowing[d].set()
            self._dropping.discard(d)

    def drop(self, direction: Direction) -> None:
        """Silently discard bytes in one direction (a response lost on the way)."""
        self._dropping.add(direction)

    @property
    def open_connections(self) -> int:
        return len(self._pipes)

    # ---------------------------------------------------------------- plumbing
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.connections_accepted += 1
        pipe = _Pipe(writer, s_writer)
        self._pipes.add(pipe)
        pipe.tasks = [asyncio.ensure_future(self._copy(reader, s_writer, "up", pipe)),
                      asyncio.ensure_future(self._copy(s_reader, writer, "down", pipe))]

    async def _copy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    direction: str, pipe: _Pipe) -> None:
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                await self._flowing[direction].wait()
                if direction in self._dropping:
                    continue
                self.bytes[direction] += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError, OSError):
            pass
        finally:
            if pipe in self._pipes:
                self._pipes.discard(pipe)
                pipe.client.transport.abort()
                pipe.server.transport.abort()
