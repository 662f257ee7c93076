"""A local fake of Twilio's Messages resource for ``usher bench broadcast``, as cheap as it can
be so that the benchmark measures Usher, not the fake: a bare asyncio HTTP/1.1 server (keep-
alive, no framework) that takes ``POST .../Messages.json``, notes the ``To`` and when it came,
and answers 201 with a SID; ``GET .../Messages.json`` (a reconciliation) lists nothing; ``GET
/_stats`` answers what it took: ``received``, ``distinct``, ``duplicates`` and the first
arrival time (epoch seconds) by number.

    python -m benchmarks.broadcast_fake --port 18555
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import parse_qs


class Books:
    """What the fake took."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.received = 0
        self.duplicates = 0

    def take(self, to: str) -> None:
        self.received += 1
        if to in self.first:
            self.duplicates += 1
        else:
            self.first[to] = time.time()

    def stats(self) -> bytes:
        return json.dumps(
            {
                "received": self.received,
                "distinct": len(self.first),
                "duplicates": self.duplicates,
                "first": self.first,
            }
        ).encode()


class Fake(asyncio.Protocol):
    """One connection: requests parsed as they arrive (pipelined or not), answered in order."""

    def __init__(self, books: Books) -> None:
        self.books = books
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.count = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            method, path, _ = head.split(" ", 2)
            self.answer(method, path, body)

    def answer(self, method: str, path: str, body: bytes) -> None:
        assert self.transport is not None
        if path.startswith("/_stats"):
            self.respond(b"200 OK", self.books.stats())
        elif method == "POST" and path.endswith("/Messages.json"):
            to = parse_qs(body.decode()).get("To", [""])[0]
            self.books.take(to)
            self.count += 1
            sid = f'{{"sid": "SM{id(self):x}{self.count:08d}", "status": "queued"}}'.encode()
            self.respond(b"201 Created", sid)
        elif method == "GET" and "/Messages.json" in path:
            self.respond(b"200 OK", b'{"messages": []}')
        else:
            self.respond(b"404 Not Found", b"{}")

    def respond(self, status: bytes, body: bytes) -> None:
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 "
            + status
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )


async def serve(host: str, port: int) -> None:
    books = Books()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Fake(books), host, port)
    print(f"fake provider on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
