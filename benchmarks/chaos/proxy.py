"""A loopback TCP proxy the chaos suite puts between the service and a store it does not own
(the machine's shared PostgreSQL or Redis): ``stall`` holds every byte, connections open, as a
SIGSTOPped server would; ``cut`` drops every connection and refuses new ones, as a stopped one
would. The store itself is never touched."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import parse_qs, urlsplit, urlunsplit


class StoreProxy:
    """Listens on 127.0.0.1 and forwards to the server of ``target_url`` (TCP, or a PostgreSQL
    Unix socket given as ``?host=/dir``)."""

    def __init__(self, target_url: str, default_port: int) -> None:
        self.target_url = target_url
        parts = urlsplit(target_url)
        socket_dir = parse_qs(parts.query).get("host", [None])[0]
        port = parts.port or default_port
        self._unix = f"{socket_dir}/.s.PGSQL.{port}" if socket_dir else None
        self._tcp = (parts.hostname or "127.0.0.1", port)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.port = 0

    @property
    def url(self) -> str:
        """The target URL, reached through this proxy (same user, password and path)."""
        parts = urlsplit(self.target_url)
        auth = ""
        if parts.username or parts.password:
            auth = f"{parts.username or ''}{':' + parts.password if parts.password else ''}@"
        return urlunsplit((parts.scheme, f"{auth}127.0.0.1:{self.port}", parts.path, "", ""))

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.resume()
        await self.cut()

    def stall(self) -> None:
        """Hold every byte in both directions, connections open."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

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
        """Listen again, on the same port."""
        await self.start()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self._unix:
                up_reader, up_writer = await asyncio.open_unix_connection(self._unix)
            else:
                up_reader, up_writer = await asyncio.open_connection(*self._tcp)
        except OSError:
            writer.close()
            return
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
            for end in (writer, up_writer):
                end.close()


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event
) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            await flowing.wait()
            writer.write(data)
            await writer.drain()
    writer.close()
