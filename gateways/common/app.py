"""The gateway process: its HTTP app (the provider's webhooks, ``/healthz``, ``/files/<sha>``)
and ``run``, which wires the core clients, the directory, outbound delivery and uvicorn."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import httpx
import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from usher.client import GatewayClient

from gateways.common.blobs import BlobStore
from gateways.common.broadcast_journal import BroadcastJournal
from gateways.common.broadcasts import BroadcastSender
from gateways.common.choices import OfferLog
from gateways.common.directory import Directory
from gateways.common.gateway import Gateway
from gateways.common.inbox import Inbox
from gateways.common.outbound import Outbound
from gateways.common.provider import Provider
from gateways.common.sentlog import SentLog
from gateways.common.settings import GatewaySettings

log = structlog.get_logger(__name__)


def build_app(gateway: Gateway, routes: Sequence[BaseRoute]) -> Starlette:
    async def health(_: Request) -> Response:
        serving = sorted(f"{s.tenant}/{s.channel.channel_id}" for s in gateway.directory)
        return JSONResponse({"status": "SERVING", "channels": serving})

    async def file(request: Request) -> Response:
        found = gateway.blobs.get(request.path_params["sha256"])
        if found is None:
            raise HTTPException(404, "no such file")
        path, content_type = found
        headers = {"Cache-Control": "public, max-age=31536000, immutable"}
        return FileResponse(path, media_type=content_type, headers=headers)

    async def error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    return Starlette(
        routes=[
            Route("/healthz", health),
            Route("/files/{sha256}", file),
            *routes,
        ],
        exception_handlers={HTTPException: error},
    )


@contextlib.asynccontextmanager
async def running(provider: Provider, settings: GatewaySettings) -> AsyncIterator[Gateway]:
    """Everything but the HTTP server: clients, directory (read once), outbound delivery,
    broadcast sending and the provider's own listeners; torn down in reverse on exit."""
    if not settings.api_keys:
        raise ValueError("no gateway API keys: set USHER_GATEWAY_API_KEYS or --api-key")
    clients = [GatewayClient(settings.core, key) for key in settings.api_keys]
    directory = Directory(clients, provider.channel_type, refresh_seconds=settings.refresh_seconds)
    sent = SentLog(settings.data_dir / "sent.sqlite3")
    offers = OfferLog(settings.data_dir / "choices.sqlite3")
    async with contextlib.AsyncExitStack() as stack:
        for client in clients:
            await stack.enter_async_context(client)
        http = await stack.enter_async_context(
            httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0))
        )
        stack.callback(sent.close)
        stack.callback(offers.close)
        gateway = Gateway(
            settings,
            directory,
            Inbox(offers),
            BlobStore(
                settings.data_dir / "files",
                max_bytes=settings.max_attachment_bytes,
                base_url=settings.base_url,
            ),
            sent,
            http,
            offers,
        )
        await directory.refresh()
        directory.start()
        stack.push_async_callback(directory.stop)
        outbound = Outbound(gateway, provider)
        outbound.start()
        stack.push_async_callback(outbound.stop)
        journal = BroadcastJournal(settings.data_dir / "broadcasts.sqlite3")
        stack.callback(journal.close)
        broadcasts = BroadcastSender(
            gateway,
            provider,
            journal,
            lease=settings.broadcast_lease,
            concurrency=settings.broadcast_concurrency,
        )
        broadcasts.start()
        stack.push_async_callback(broadcasts.stop)
        await provider.start(gateway)
        stack.push_async_callback(provider.stop)
        yield gateway


async def run(provider: Provider, settings: GatewaySettings) -> None:
    """Serve until SIGTERM or SIGINT (uvicorn's handlers), then stop cleanly."""
    async with running(provider, settings) as gateway:
        app = build_app(gateway, provider.routes(gateway))
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, log_config=None, access_log=False
        )
        server = uvicorn.Server(config)
        log.info(
            "gateway listening",
            provider=provider.name,
            url=settings.base_url,
            channels=sorted(f"{s.tenant}/{s.channel.channel_id}" for s in gateway.directory),
        )
        await server.serve()
