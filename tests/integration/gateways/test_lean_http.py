"""``LeanTransport`` against a real HTTP server on loopback (uvicorn, as the fakes use) and a
raw socket server for what uvicorn will not do: answers by length and chunked, keep-alive reuse,
a kept-alive connection the server closed, timeouts and refusals as httpx's own errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateways.common.lean_http import LeanTransport, lean_client
from tests.integration.gateways.kit import eventually, free_port

TIMEOUT = httpx.Timeout(5.0)


@contextlib.asynccontextmanager
async def app_server() -> AsyncIterator[tuple[str, list[str]]]:
    peers: list[str] = []

    async def echo(request: Request) -> Response:
        peers.append(f"{request.client.host}:{request.client.port}" if request.client else "")
        form = await request.form()
        return JSONResponse(
            {
                "method": request.method,
                "form": dict(form),
                "auth": request.headers.get("authorization"),
            },
            status_code=201,
        )

    async def chunks(_: Request) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            for part in (b"one,", b"two,", b"three"):
                yield part

        return StreamingResponse(parts(), media_type="text/plain")

    async def nothing(_: Request) -> Response:
        return Response(status_code=204)

    app = Starlette(
        routes=[
            Route("/echo", echo, methods=["GET", "POST"]),
            Route("/chunks", chunks),
            Route("/nothing", nothing, methods=["DELETE"]),
        ]
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started)
    try:
        yield f"http://127.0.0.1:{port}", peers
    finally:
        server.should_exit = True
        await task


async def test_requests_and_answers_as_httpx_gives_them() -> None:
    async with app_server() as (base, peers), lean_client(TIMEOUT) as http:
        for i in range(5):
            answer = await http.post(
                f"{base}/echo", data={"To": f"+1{i}", "Body": "é&="}, auth=("AC1", "secret")
            )
            assert answer.status_code == 201
            assert answer.json()["form"] == {"To": f"+1{i}", "Body": "é&="}
            assert answer.json()["auth"] == "Basic QUMxOnNlY3JldA=="
        assert len(set(peers)) == 1  # one connection, kept alive
        streamed = await http.get(f"{base}/chunks")
        assert streamed.text == "one,two,three"
        assert (await http.request("DELETE", f"{base}/nothing")).status_code == 204
        many = await asyncio.gather(*(http.get(f"{base}/echo") for _ in range(20)))
        assert {a.status_code for a in many} == {201}


@contextlib.asynccontextmanager
async def raw_server(
    handler: object,
) -> AsyncIterator[str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


async def test_a_connection_closed_while_idle_is_replaced() -> None:
    served = 0

    async def once_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        nonlocal served
        await reader.readuntil(b"\r\n\r\n")
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # keep-alive promised, then closed: the next request must not fail

    async with raw_server(once_per_connection) as base, lean_client(TIMEOUT) as http:
        for _ in range(3):
            assert (await http.get(f"{base}/")).text == "ok"
            await asyncio.sleep(0.1)
        assert served == 3


async def test_errors_are_httpx_errors() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(5)

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        writer.close()

    async with lean_client(httpx.Timeout(0.3)) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{free_port()}/")
        async with raw_server(silent) as base:
            with pytest.raises(httpx.ReadTimeout):
                await http.get(f"{base}/")
        async with raw_server(garbage) as base:
            with pytest.raises(httpx.RemoteProtocolError):
                await http.get(f"{base}/")
    transport = LeanTransport()
    await transport.aclose()
    with pytest.raises(httpx.ConnectError):
        await transport.handle_async_request(httpx.Request("GET", "http://127.0.0.1:1/"))
