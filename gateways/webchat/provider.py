"""``WebChat``: the provider ``usher gateway webchat`` runs. Its routes live under
``/{tenant}/{channel}/`` (``pages`` for HTTP, ``live`` for the WebSocket); ``deliver`` hands
outbound items to ``Chat``, which keeps them for the visitor and pushes them to open sockets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket
from usher.v1 import channel_pb2
from usher.v1 import conversation_service_pb2 as pb

from gateways.common.directory import Served
from gateways.common.gateway import Gateway
from gateways.common.provider import Provider
from gateways.webchat.chat import Chat
from gateways.webchat.live import serve_socket
from gateways.webchat.pages import endpoints

POSTS = ("upload", "offline-message")


class WebChat(Provider):
    name: ClassVar[str] = "webchat"
    channel_type = channel_pb2.CHANNEL_TYPE_WEB_CHAT

    def __init__(self) -> None:
        self._chat: Chat | None = None

    def chat(self, gateway: Gateway) -> Chat:
        """The gateway's chat state, made on first use (deliveries may come before routes)."""
        if self._chat is None or self._chat.gateway is not gateway:
            self._chat = Chat(gateway)
        return self._chat

    def routes(self, gateway: Gateway) -> Sequence[BaseRoute]:
        chat = self.chat(gateway)

        async def socket(websocket: WebSocket) -> None:
            await serve_socket(chat, websocket)

        routes: list[BaseRoute] = [WebSocketRoute("/{tenant}/{channel}/ws", socket)]
        for suffix, endpoint in endpoints(chat).items():
            methods = ["POST", "OPTIONS"] if suffix in POSTS else ["GET"]
            routes.append(Route(f"/{{tenant}}/{{channel}}/{suffix}", endpoint, methods=methods))
        return routes

    async def deliver(self, gateway: Gateway, served: Served, item: pb.OutboundItem) -> None:
        await self.chat(gateway).deliver(served, item)

    async def start(self, gateway: Gateway) -> None:
        self.chat(gateway)

    async def stop(self) -> None:
        if self._chat is not None:
            self._chat.close()
            self._chat = None
