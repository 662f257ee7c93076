"""What bots' integration tests stand on: a web service bots' webhooks call (served by uvicorn on
a free port, recording each signed request and answering as scripted), and serving a bot
through BotService (create, then activate)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from usher.client import BotClient
from usher.v1 import bot_service_pb2 as pb

from core.bots import codec, webhook
from core.bots.flow import Bot


@dataclass(frozen=True, slots=True)
class Script:
    """How the service answers: a status and a JSON body, after ``delay`` seconds."""

    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Hook:
    """The service: ``calls`` holds each request's JSON body and whether its signature verified
    against ``secret`` (set once the bot exists); ``script`` answers."""

    port: int
    secret: str = ""
    script: Script = field(default_factory=Script)
    calls: list[tuple[dict[str, Any], bool]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def handle(self, request: Request) -> Response:
        raw = await request.body()
        signed = webhook.verify(self.secret, raw, request.headers.get(webhook.SIGNATURE_HEADER, ""))
        self.calls.append((json.loads(raw), signed))
        script = self.script
        if script.delay:
            await asyncio.sleep(script.delay)
        return Response(json.dumps(script.body), script.status, media_type="application/json")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def hook_service() -> AsyncIterator[Hook]:
    hook = Hook(_free_port())
    app = Starlette(routes=[Route("/hook", hook.handle, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=hook.port, log_config=None, access_log=False, lifespan="off"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield hook
    finally:
        server.should_exit = True
        server.force_exit = True  # a delayed answer in flight does not hold the test
        await asyncio.wait_for(task, 10)


async def serve(client: BotClient, bot: Bot) -> str:
    """Create ``bot`` through BotService and activate it; its webhook secret."""
    created = await client.create_bot(
        pb.CreateBotRequest(bot_id=bot.id, bot=codec.bot_to_proto(bot))
    )
    await client.activate_bot(pb.ActivateBotRequest(name=f"bots/{bot.id}"))
    return created.bot.webhook_secret
