"""A local stand-in for the LINE Platform: it checks the gateway's API calls against the shapes
LINE documents (bearer token, JSON bodies, at most five message objects, quick replies of
postback buttons on the last one, single-use reply tokens, UUID retry keys) and builds webhooks
signed as LINE signs them (``x-line-signature``: base64 HMAC-SHA256 of the raw body under the
channel secret). Anything off is answered 400/401 and noted in ``problems``."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateways.common.signatures import hmac_sha256_base64
from tests.integration.gateways.kit import eventually, free_port

SECRET = "line-channel-secret"
TOKEN = "line-access-token"
DATA_PREFIX = "/data"  # the data API (content) lives under its own base URL
REPLY_TOKEN_TTL = 60.0


@dataclass
class Sent:
    api: str
    """``reply`` or ``push``."""
    to: str
    messages: list[dict[str, Any]]
    retry_key: str = ""
    ids: list[str] = field(default_factory=list)
    """The ``sentMessages`` ids answered."""


@dataclass
class FakeLine:
    base_url: str = ""
    sent: list[Sent] = field(default_factory=list)
    loading: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    contents: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)
    content_requests: list[str] = field(default_factory=list)
    _tokens: dict[str, tuple[str, float]] = field(default_factory=dict)
    """Reply token -> (user, issued at); removed when used."""
    _retry_keys: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(600000000000))

    @property
    def data_url(self) -> str:
        return self.base_url + DATA_PREFIX

    def settings(self, **more: str) -> dict[str, str]:
        """Channel settings pointing the gateway here."""
        return {"api_base_url": self.base_url, "data_api_base_url": self.data_url, **more}

    # --- webhooks -------------------------------------------------------------------------

    def event(
        self,
        kind: str,
        user: str,
        *,
        event_id: str | None = None,
        redelivery: bool = False,
        with_token: bool = True,
        **fields: Any,
    ) -> dict[str, Any]:
        """A webhook event from a one-on-one chat, with a fresh reply token when LINE gives
        one (not for unfollow)."""
        event: dict[str, Any] = {
            "type": kind,
            "mode": "active",
            "timestamp": int(time.time() * 1000),
            "source": {"type": "user", "userId": user},
            "webhookEventId": event_id or uuid.uuid4().hex.upper()[:26],
            "deliveryContext": {"isRedelivery": redelivery},
            **fields,
        }
        if with_token and kind != "unfollow":
            token = uuid.uuid4().hex
            self._tokens[token] = (user, time.monotonic())
            event["replyToken"] = token
        return event

    def text(self, user: str, text: str, **options: Any) -> dict[str, Any]:
        message = {"id": str(next(self._ids)), "type": "text", "text": text, "quoteToken": "q"}
        return self.event("message", user, message=message, **options)

    def media(
        self, user: str, kind: str, data: bytes, content_type: str, **extra: Any
    ) -> dict[str, Any]:
        message_id = str(next(self._ids))
        self.contents[message_id] = (data, content_type)
        message = {"id": message_id, "type": kind, "contentProvider": {"type": "line"}, **extra}
        return self.event("message", user, message=message)

    def expire(self, token: str) -> None:
        user, _ = self._tokens[token]
        self._tokens[token] = (user, time.monotonic() - REPLY_TOKEN_TTL - 1)

    @staticmethod
    def signed(events: list[dict[str, Any]], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"destination": "Ubot", "events": events}).encode()
        headers = {
            "content-type": "application/json; charset=utf-8",
            "x-line-signature": hmac_sha256_base64(secret, body),
        }
        return body, headers

    # --- the API --------------------------------------------------------------------------

    def _refuse(self, status: int, problem: str) -> Response:
        self.problems.append(problem)
        return JSONResponse({"message": problem}, status_code=status)

    def _authorized(self, request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {TOKEN}"

    def _check_messages(self, messages: object) -> str | None:
        if not isinstance(messages, list) or not 1 <= len(messages) <= 5:
            return "messages must be a list of 1 to 5 message objects"
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                return "a message is not an object"
            if "quickReply" in message:
                if i != len(messages) - 1:
                    return "a quick reply shows only on the last message object"
                problem = self._check_quick_reply(message["quickReply"])
                if problem:
                    return problem
                message = {k: v for k, v in message.items() if k != "quickReply"}
            if message.get("type") == "text":
                text = message.get("text")
                if set(message) != {"type", "text"} or not isinstance(text, str):
                    return f"bad text message {message}"
                if not 1 <= len(text) <= 5000:
                    return "text must be 1 to 5000 characters"
            elif message.get("type") == "image":
                if set(message) != {"type", "originalContentUrl", "previewImageUrl"}:
                    return f"bad image message {message}"
                urls = (message["originalContentUrl"], message["previewImageUrl"])
                if not all(isinstance(u, str) and u.startswith("https://") for u in urls):
                    return "image URLs must be https"
            else:
                return f"unexpected message type {message.get('type')}"
        return None

    @staticmethod
    def _check_quick_reply(quick: object) -> str | None:
        """A quick reply of postback buttons, as LINE documents them: 1 to 13 items, each an
        ``action`` item with a postback action (label 1-20, data 1-300, displayText 1-300 and
        required for quick replies)."""
        if not isinstance(quick, dict) or set(quick) != {"items"}:
            return f"bad quickReply {quick}"
        items = quick["items"]
        if not isinstance(items, list) or not 1 <= len(items) <= 13:
            return "quickReply.items must hold 1 to 13 items"
        for item in items:
            if not isinstance(item, dict) or set(item) - {"type", "action", "imageUrl"}:
                return f"bad quick reply item {item}"
            action = item.get("action")
            if item.get("type") != "action" or not isinstance(action, dict):
                return f"a quick reply item needs type action and an action: {item}"
            if action.get("type") != "postback":
                return f"unexpected quick reply action {action}"
            if set(action) - {"type", "label", "data", "displayText", "inputOption"}:
                return f"bad postback action {action}"
            for key, limit in (("label", 20), ("data", 300), ("displayText", 300)):
                value = action.get(key)
                if not isinstance(value, str) or not 1 <= len(value) <= limit:
                    return f"postback {key} must be 1 to {limit} characters: {action}"
        return None

    async def _json(self, request: Request) -> dict[str, Any] | None:
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return None
        try:
            payload = json.loads(await request.body())
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None

    def _sent_messages(self, count: int) -> list[dict[str, str]]:
        return [{"id": str(next(self._ids)), "quoteToken": "qt"} for _ in range(count)]

    async def reply(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._refuse(401, "reply without the channel access token")
        payload = await self._json(request)
        if payload is None or set(payload) - {"replyToken", "messages", "notificationDisabled"}:
            return self._refuse(400, f"bad reply body {payload}")
        problem = self._check_messages(payload.get("messages"))
        if problem:
            return self._refuse(400, problem)
        issued = self._tokens.pop(str(payload.get("replyToken")), None)
        if issued is None or time.monotonic() - issued[1] > REPLY_TOKEN_TTL:
            return JSONResponse({"message": "Invalid reply token"}, status_code=400)
        sent = self._sent_messages(len(payload["messages"]))
        self.sent.append(Sent("reply", issued[0], payload["messages"], ids=[m["id"] for m in sent]))
        return JSONResponse({"sentMessages": sent})

    async def push(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._refuse(401, "push without the channel access token")
        key = request.headers.get("x-line-retry-key", "")
        if key:
            try:
                uuid.UUID(key)
            except ValueError:
                return self._refuse(400, f"retry key {key!r} is not a UUID")
            if key in self._retry_keys:
                return JSONResponse(
                    {
                        "message": "The retry key is already accepted",
                        "sentMessages": self._retry_keys[key],
                    },
                    status_code=409,
                )
        payload = await self._json(request)
        if payload is None or set(payload) - {"to", "messages", "notificationDisabled"}:
            return self._refuse(400, f"bad push body {payload}")
        to = payload.get("to")
        if not isinstance(to, str) or not to.startswith("U"):
            return self._refuse(400, f"push to {to!r}")
        problem = self._check_messages(payload.get("messages"))
        if problem:
            return self._refuse(400, problem)
        sent = self._sent_messages(len(payload["messages"]))
        self.sent.append(Sent("push", to, payload["messages"], key, [m["id"] for m in sent]))
        if key:
            self._retry_keys[key] = sent
        return JSONResponse({"sentMessages": sent})

    async def loading_start(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._refuse(401, "loading without the channel access token")
        payload = await self._json(request)
        seconds = (payload or {}).get("loadingSeconds")
        if not isinstance(seconds, int) or seconds % 5 or not 5 <= seconds <= 60:
            return self._refuse(400, f"bad loading body {payload}")
        self.loading.append(payload or {})
        return JSONResponse({}, status_code=202)

    async def profile(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._refuse(401, "profile without the channel access token")
        user = request.path_params["user"]
        if user not in self.profiles:
            return JSONResponse({"message": "Not found"}, status_code=404)
        return JSONResponse({"userId": user, "displayName": self.profiles[user], "language": "en"})

    async def content(self, request: Request) -> Response:
        if not self._authorized(request):
            return self._refuse(401, "content without the channel access token")
        message_id = request.path_params["message"]
        self.content_requests.append(message_id)
        if message_id not in self.contents:
            return JSONResponse({"message": "Not found"}, status_code=404)
        data, content_type = self.contents[message_id]
        return Response(data, media_type=content_type)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v2/bot/message/reply", self.reply, methods=["POST"]),
                Route("/v2/bot/message/push", self.push, methods=["POST"]),
                Route("/v2/bot/chat/loading/start", self.loading_start, methods=["POST"]),
                Route("/v2/bot/profile/{user}", self.profile),
                Route(DATA_PREFIX + "/v2/bot/message/{message}/content", self.content),
            ]
        )


@contextlib.asynccontextmanager
async def fake_line() -> AsyncIterator[FakeLine]:
    fake = FakeLine()
    port = free_port()
    fake.base_url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(
        uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started)
    try:
        yield fake
    finally:
        server.should_exit = True
        await task
