"""A loopback TCP proxy that tests can cut and restore, to make a server "go away" and "come back"
without stopping it (the real PostgreSQL on CI is shared by the whole machine)."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit, urlunsplit


class CuttableProxy:
    def __init__(self, target_url: str) -> None:
        self.target_url = target_url
        parts = urlsplit(target_url)
        socket_dir = parse_qs(parts.query).get("host", [None])[0]
        self._unix = f"{socket_dir}/.s.PGSQL.{parts.port or 5432}" if socket_dir else None
        self._tcp = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.port = 0

    @property
    def url(self) -> str:
        """The target URL, reached through this proxy."""
        parts = urlsplit(self.target_url)
        user = parts.username or "postgres"
        password = f":{parts.password}" if parts.password else ""
        netloc = f"{user}{password}@127.0.0.1:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def restore(self) -> None:
        await self.start()

    def stall(self) -> None:
        """Hold every byte in both directions, connections open (as a SIGSTOPped server)."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._unix:
            up_reader, up_writer = await asyncio.open_unix_connection(self._unix)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self._tcp)
        pipes = [
            asyncio.ensure_future(_pipe(reader, up_writer, self._flowing)),
            asyncio.ensure_future(_pipe(up_reader, writer, self._flowing)),
        ]
        self._pipes.update(pipes)
        try:
            await asyncio.gather(*pipes)
        except asyncio.CancelledError:
            pass
        finally:
            self._pipes.difference_update(pipes)
            for w in (writer, up_writer):
                w.close()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event
) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            await flowing.wait()
            writer.write(data)
            await writer.drain()
    writer.close()
