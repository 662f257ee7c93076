"""``usher serve`` for the TypeScript SDK's Node tests (clients/typescript/src/test).

    python -m tests.integration.node_server      # from the repository root

Runs ``usher serve --local --demo`` on free ports (gRPC and the web port) with its own data:
a fresh database on ``USHER_TEST_DATABASE_URL``'s server (dropped at the end), else an embedded
PostgreSQL, and an embedded Redis (the demo tenant's keys shared with no other run), under a
temporary data directory. The server's banner goes to stdout as it prints it (the web API's
URL, the demo tenant's gateway, agent and admin tokens); its log goes to a file named on the
first line (``USHER_NODE_TEST_LOG``: a file to keep a copy in). It allows CORS from ``ORIGIN``
and ``STREAM_CAP`` streams per credential. It stops (SIGTERM, then cleans up) on SIGTERM or
SIGINT, or when its stdin closes (the Node test runner is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import uuid
from pathlib import Path

import asyncpg

from core.store.migrate import migrate

ORIGIN = "http://console.test"
STREAM_CAP = 6
"""Server streams per credential: the Node tests open more to see QuotaFailure."""
STOP_WAIT = 30.0  # a safety net against hangs: then the server is killed


def with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


async def main() -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="usher-node-test-"))
    log = data_dir / "serve.log"
    server_url = os.environ.get("USHER_TEST_DATABASE_URL")
    database = f"usher_node_{uuid.uuid4().hex[:12]}" if server_url else None
    args = [
        *("--local", "--demo", "--host", "127.0.0.1", "--port", "0", "--web-port", "0"),
        *("--http-port", "-1", "--webchat-port", "-1", "--data-dir", str(data_dir)),
        *("--cors-origin", ORIGIN, "--max-streams-per-credential", str(STREAM_CAP)),
    ]
    if server_url and database:
        admin = await asyncpg.connect(server_url)
        await admin.execute(f'CREATE DATABASE "{database}"')
        await admin.close()
        url = with_database(server_url, database)
        conn = await asyncpg.connect(url)
        await migrate(conn)
        await conn.close()
        args += ["--database-url", url]
    print(f"usher-node-test: log {log}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watch = asyncio.create_task(_stdin_closed())
    watch.add_done_callback(lambda _: stop.set())
    try:
        with log.open("wb") as err:
            process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "core.cli", "serve", *args), stderr=err
            )
            exited = asyncio.create_task(process.wait())
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(exited, STOP_WAIT)
                except TimeoutError:
                    process.kill()
                    await exited
            stopping.cancel()
            return process.returncode or 0
    finally:
        watch.cancel()
        if server_url and database:
            with contextlib.suppress(Exception):
                admin = await asyncpg.connect(server_url)
                await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                await admin.close()
        if keep := os.environ.get("USHER_NODE_TEST_LOG"):  # for a look after the run
            with contextlib.suppress(OSError):
                shutil.copyfile(log, keep)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
