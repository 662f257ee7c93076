"""The web chat gateway inside ``usher serve --demo``: the demo tenant's ``webchat`` channel and
the gateway serving it in the core's own process, so a newcomer can open a page and chat.

The gateway talks to the core only through the SDK, as a separate ``usher gateway webchat``
would. It leaves SIGTERM and SIGINT to ``usher serve``, which stops it after the core's server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import structlog
import uvicorn

from gateways.common.app import build_app, running
from gateways.common.settings import GatewaySettings
from gateways.webchat.provider import WebChat

log = structlog.get_logger(__name__)

CHANNEL_ID: Final = "webchat"
CHANNEL_TYPE: Final = "web_chat"
"""The store's name of CHANNEL_TYPE_WEB_CHAT."""
DISPLAY_NAME: Final = "Demo web chat"
SETTINGS: Final = {
    "title": "Demo shop",
    "greeting": "Hi! Ask us anything: Ann or Bob will answer.",
    "prechat_fields": "name,email",
}


class _Embedded(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the process hosting it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    except SystemExit:  # uvicorn exits when it cannot bind: the core keeps running
        log.error("the demo web chat could not listen", port=server.config.port)


class DemoWebChat:
    """The demo's web chat gateway: ``start`` once the core listens, ``stop`` at shutdown."""

    def __init__(self, *, api_key: str, tenant: str, host: str, port: int, data_dir: Path) -> None:
        self.settings = GatewaySettings(
            api_keys=(api_key,),
            host=host,
            port=port,
            data_dir=data_dir,
            refresh_seconds=5.0,
        )
        self.tenant = tenant
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def demo_url(self) -> str:
        return f"{self.settings.base_url}/{self.tenant}/{CHANNEL_ID}/demo"

    def start(self, core_host: str, core_port: int) -> None:
        """Serve, speaking to the core listening on ``core_host:core_port``."""
        host = "127.0.0.1" if core_host in ("", "0.0.0.0", "::") else core_host
        core = f"[{host}]:{core_port}" if ":" in host else f"{host}:{core_port}"
        self.settings = self.settings.model_copy(update={"core": core})
        self._task = asyncio.create_task(self._run(), name="demo-webchat")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._task, 10.0)

    async def _run(self) -> None:
        provider = WebChat()
        async with running(provider, self.settings) as gateway:
            server = _Embedded(
                uvicorn.Config(
                    build_app(gateway, provider.routes(gateway)),
                    host=self.settings.host,
                    port=self.settings.port,
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                )
            )
            serving = asyncio.create_task(_serve(server))
            stopping = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            server.should_exit = True
            stopping.cancel()
            await serving
