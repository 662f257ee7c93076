"""The front door's HTTP face: the API for browsers (Connect, gRPC-Web) with CORS, and QR
codes' tracking links (``/q/{code}``, ``core.api.tracking``), on uvicorn.

``WebOptions`` says where to listen and which origins may call; ``WebServer`` serves
``core.api.connect_bridge`` on that port next to the gRPC server (``core.api.server.Server``
starts and stops it). CORS is per deployment: preflights from a listed origin are answered
with the headers Connect and gRPC-Web clients send and read; any other origin's are refused
(400), and with no origin listed only same-origin pages may call. Plain gRPC (HTTP/2 with
trailers) belongs on the gRPC port: here it is answered 415.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import structlog
import uvicorn
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

log = structlog.get_logger(__name__)

ALLOWED_HEADERS = (
    "authorization",
    "content-type",
    "content-encoding",
    "accept-encoding",
    "connect-protocol-version",
    "connect-timeout-ms",
    "connect-content-encoding",
    "connect-accept-encoding",
    "grpc-timeout",
    "x-grpc-web",
    "x-user-agent",
)
"""Request headers a cross-origin Connect or gRPC-Web call may carry."""
EXPOSED_HEADERS = ("grpc-status", "grpc-message", "grpc-status-details-bin", "content-encoding")
"""Response headers its script may read (gRPC-Web's trailers-only errors use them)."""
PREFLIGHT_MAX_AGE = 7200


@dataclass(frozen=True, slots=True)
class WebOptions:
    """Where the API for browsers listens (``port`` 0: any free port) and the origins allowed
    to call it across origins (``*`` for any: credentials are bearer headers, not cookies)."""

    host: str = "127.0.0.1"
    port: int = 8090
    cors_origins: tuple[str, ...] = ()


class _NoPlainGrpc:
    """415 for ``application/grpc`` (not ``-web``): uvicorn has no HTTP trailers to send it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            content_type = dict(scope.get("headers", ())).get(b"content-type", b"")
            if content_type == b"application/grpc" or content_type.startswith(b"application/grpc+"):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 415,
                        "headers": [(b"content-type", b"text/plain")],
                    }
                )
                await send({"type": "http.response.body", "body": b"use the gRPC port\n"})
                return
        await self.app(scope, receive, send)


class _Paths:
    """``/q/...`` to ``tracking`` (QR codes' links, ``core.api.tracking``), the rest to ``api``."""

    def __init__(self, api: ASGIApp, tracking: ASGIApp) -> None:
        self.api = api
        self.tracking = tracking

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").startswith("/q/"):
            await self.tracking(scope, receive, send)
            return
        await self.api(scope, receive, send)


def web_app(
    bridge: ASGIApp, cors_origins: Sequence[str], tracking: ASGIApp | None = None
) -> ASGIApp:
    """``bridge`` behind CORS for ``cors_origins`` and the plain-gRPC refusal; with
    ``tracking``, QR codes' tracking links (``/q/{code}``) beside it, outside CORS; and the web
    console at ``/console`` (``core.console``: same origin as the API, so no CORS)."""
    from core.console import mounted

    api = CORSMiddleware(
        _NoPlainGrpc(bridge),
        allow_origins=list(cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=list(ALLOWED_HEADERS),
        expose_headers=list(EXPOSED_HEADERS),
        max_age=PREFLIGHT_MAX_AGE,
    )
    return mounted(api if tracking is None else _Paths(api, tracking))


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` with ``SO_REUSEPORT``, so that several front-door
    processes (``usher serve --workers``) share the port as they share the gRPC one."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class _Embedded(uvicorn.Server):
    """uvicorn leaving signal handling to the process hosting it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """uvicorn serving ``app`` on a socket of its own: ``start`` (the bound port), ``stop``."""

    def __init__(self, app: ASGIApp, options: WebOptions) -> None:
        self.options = options
        self.port = 0
        self._app = app
        self._server: _Embedded | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        sock = listen(self.options.host, self.options.port)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._app,
            log_config=None,
            access_log=False,
            lifespan="off",
            # the Connect bridge keeps no per-connection state: a few seconds suffice for the
            # answers still in flight once the gRPC server has drained
            timeout_graceful_shutdown=5,
        )
        self._server = _Embedded(config)
        self._task = asyncio.create_task(self._serve(self._server, sock), name="web")
        while not self._server.started:
            if self._task.done():
                await self._task
                raise OSError(f"the web port {self.options.host}:{self.port} did not start")
            await asyncio.sleep(0.01)
        log.info("web serving", host=self.options.host, port=self.port)
        return self.port

    @staticmethod
    async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            sock.close()

    async def stop(self) -> None:
        """Stop accepting, let answers in flight finish, close; idempotent."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await self._task
        self._server = None

    @property
    def url(self) -> str:
        host = self.options.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"
