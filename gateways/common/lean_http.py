"""``LeanTransport``: an httpx transport for many small requests to one provider, lighter than
httpx's default (httpcore over anyio) by doing less: HTTP/1.1 over asyncio streams, a keep-
alive pool per origin, each request written in one piece, bodies read by ``Content-Length`` or
chunked or to the close. Clients keep httpx's API (``httpx.AsyncClient(transport=...)``); the
broadcast sender's lanes use it (``gateways.common.broadcasts``), where a gateway makes a
request per recipient and httpcore's per-request bookkeeping was most of its CPU.

Errors are httpx's own (``ConnectError``, ``ConnectTimeout``, ``ReadTimeout``,
``RemoteProtocolError``...), so callers' retry rules hold. A request on a kept-alive connection
the server had closed meanwhile is sent once more on a new one, as httpcore does; a request
that may have reached the server is never repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import defaultdict

import httpx

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024


class _Closed(Exception):
    """The kept-alive connection was closed before anything of the answer came."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class LeanTransport(httpx.AsyncBaseTransport):
    """See the module docstring. ``max_idle`` connections per origin are kept for reuse."""

    def __init__(self, *, max_idle: int = 16, verify: ssl.SSLContext | None = None) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = defaultdict(list)
        self._max_idle = max_idle
        self._ssl = verify
        self._closed = False

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def _connect(self, origin: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = origin
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    host,
                    port,
                    ssl=self._context() if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                    limit=MAX_HEADER_BYTES,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            raise httpx.ConnectError(f"{host}:{port}: {exc}") from exc
        return _Connection(reader, writer)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.ConnectError("the transport is closed")
        url = request.url
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = request.extensions.get("timeout", {})
        payload = _serialized(request, await request.aread())
        while True:
            idle = self._idle[origin]
            connection = (
                idle.pop() if idle else await self._connect(origin, timeouts.get("connect"))
            )
            try:
                response = await self._exchange(connection, origin, payload, request, timeouts)
            except _Closed:
                connection.close()
                if connection.reused:
                    continue  # the server closed it while idle: a fresh one
                raise httpx.RemoteProtocolError("the server closed the connection") from None
            except BaseException:
                connection.close()
                raise
            return response

    async def _exchange(
        self,
        connection: _Connection,
        origin: tuple[str, str, int],
        payload: bytes,
        request: httpx.Request,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        try:  # asyncio.timeout, not wait_for: no task per call
            connection.writer.write(payload)
            async with asyncio.timeout(timeouts.get("write")):
                await connection.writer.drain()
        except TimeoutError as exc:
            raise httpx.WriteTimeout("writing the request timed out") from exc
        except OSError as exc:
            raise _Closed() from exc
        try:
            async with asyncio.timeout(timeouts.get("read")):
                status, headers, body, keep = await _read_response(
                    connection.reader, request.method
                )
        except TimeoutError as exc:
            raise httpx.ReadTimeout("reading the answer timed out") from exc
        if keep and not self._closed:
            idle = self._idle[origin]
            if len(idle) < self._max_idle:
                connection.reused = True
                idle.append(connection)
            else:
                connection.close()
        else:
            connection.close()
        return httpx.Response(
            status, headers=headers, stream=httpx.ByteStream(body), request=request
        )

    async def aclose(self) -> None:
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()


def _serialized(request: httpx.Request, body: bytes) -> bytes:
    """The request in one piece (headers as httpx built them; the body's length stated)."""
    target = request.url.raw_path.decode("ascii")
    lines = [f"{request.method} {target} HTTP/1.1"]
    names = set()
    for name, value in request.headers.multi_items():
        low = name.lower()
        if low == "transfer-encoding":
            continue  # the body is read whole: sent with its length
        names.add(low)
        lines.append(f"{name}: {value}")
    if "content-length" not in names and (body or request.method in ("POST", "PUT", "PATCH")):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _read_response(
    reader: asyncio.StreamReader, method: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
    """(status, headers, body, keep-alive) of one HTTP/1.1 answer; ``_Closed`` if the
    connection ended before its first byte."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            raise _Closed() from exc
        raise httpx.RemoteProtocolError("the answer ended in its headers") from exc
    except (asyncio.LimitOverrunError, ValueError) as exc:
        raise httpx.RemoteProtocolError("the answer's headers are too long") from exc
    except OSError as exc:
        raise _Closed() from exc
    lines = head[:-4].split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise httpx.RemoteProtocolError(f"not an HTTP/1.1 status line: {lines[0][:80]!r}")
    status = int(parts[1])
    headers: list[tuple[bytes, bytes]] = []
    length: int | None = None
    chunked = False
    close = parts[0] == b"HTTP/1.0"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name, value = name.strip(), value.strip()
        headers.append((name, value))
        low = name.lower()
        if low == b"content-length":
            length = int(value)
        elif low == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif low == b"connection":
            close = value.lower() == b"close"
    try:
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif chunked:
            body = await _chunks(reader)
        elif length is not None:
            if length > MAX_BODY_BYTES:
                raise httpx.RemoteProtocolError("the answer's body is too large")
            body = await reader.readexactly(length)
        else:
            body = await reader.read(MAX_BODY_BYTES)
            close = True
    except asyncio.IncompleteReadError as exc:
        raise httpx.RemoteProtocolError("the answer ended in its body") from exc
    return status, headers, body, not close


async def _chunks(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        count = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if count == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        size += count
        if size > MAX_BODY_BYTES:
            raise httpx.RemoteProtocolError("the answer's body is too large")
        parts.append(await reader.readexactly(count))
        await reader.readexactly(2)


def lean_client(timeout: httpx.Timeout, *, max_idle: int = 16) -> httpx.AsyncClient:
    """An httpx client over a ``LeanTransport``."""
    return httpx.AsyncClient(timeout=timeout, transport=LeanTransport(max_idle=max_idle))
