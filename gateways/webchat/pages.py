"""The web chat's HTTP routes, all under ``/{tenant}/{channel}``: the widget's script and style,
its configuration, the embed snippet, a demo page, uploads, left messages, and the console's
visitor list and ratings (Bearer ``console_token``). Unknown tenant or channel -> 404."""

from __future__ import annotations

import datetime as dt
import html
import json
import secrets
from collections.abc import Awaitable, Callable
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import unquote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from usher.client import UsherError
from usher.v1 import conversation_service_pb2 as gw_pb

from gateways.common.blobs import TooLarge
from gateways.common.directory import Served
from gateways.common.inbox import Customer
from gateways.common.phones import InvalidPhone, to_e164
from gateways.webchat import frames, web
from gateways.webchat.chat import Chat, clean_name, is_safe_type
from gateways.webchat.live import EMAIL

PRECHAT_FIELDS = ("name", "phone", "email")
MAX_OFFLINE_TEXT = 10_000
Endpoint = Callable[[Request], Awaitable[Response]]


@cache
def asset(name: str) -> bytes:
    return resources.files("gateways.webchat").joinpath("static", name).read_bytes()


def _list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def widget_config(chat: Chat, served: Served) -> dict[str, Any]:
    """What the widget shows before the visitor writes (from the channel's settings)."""
    settings = served.channel.settings
    fields = [f for f in _list(settings.get("prechat_fields", "")) if f in PRECHAT_FIELDS]
    required = [f for f in _list(settings.get("prechat_required", "")) if f in fields]
    return {
        "title": settings.get("title") or served.channel.display_name or "Chat with us",
        "greeting": settings.get("greeting", ""),
        "color": settings.get("color", "#2563eb"),
        "prechat_fields": fields,
        "prechat_required": required,
        "offline_only": settings.get("offline", "").lower() in ("1", "true", "yes"),
        # The core's gateway API does not say whether agents are online or the queue is open:
        # the widget learns it from the core's answer to the first message (see the docs).
        "availability": "unknown",
        "max_attachment_bytes": chat.gateway.settings.max_attachment_bytes,
        "max_frame_bytes": chat.gateway.settings.max_body_bytes,
    }


def snippet(chat: Chat, served: Served) -> str:
    base = chat.gateway.settings.base_url
    src = f"{base}/{served.tenant}/{served.channel.channel_id}/widget.js"
    return f'<script src="{html.escape(src)}" async></script>'


def endpoints(chat: Chat) -> dict[str, Endpoint]:
    """The route handlers by path suffix, bound to ``chat``."""
    gateway = chat.gateway

    async def widget_js(request: Request) -> Response:
        gateway.served(request)
        return Response(
            asset("widget.js"),
            media_type="text/javascript; charset=utf-8",
            headers={"Cache-Control": "public, max-age=300"},
        )

    async def widget_css(request: Request) -> Response:
        gateway.served(request)
        return Response(
            asset("widget.css"),
            media_type="text/css; charset=utf-8",
            headers={"Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"},
        )

    async def config(request: Request) -> Response:
        served = gateway.served(request)
        return JSONResponse(
            widget_config(chat, served), headers=web.cors(served.channel, request.headers)
        )

    async def snippet_page(request: Request) -> Response:
        return PlainTextResponse(snippet(chat, gateway.served(request)) + "\n")

    async def demo(request: Request) -> Response:
        served = gateway.served(request)
        page = asset("demo.html").decode()
        page = page.replace("{{title}}", html.escape(widget_config(chat, served)["title"]))
        page = page.replace("{{snippet}}", snippet(chat, served))
        page = page.replace("{{snippet_text}}", html.escape(snippet(chat, served)))
        return Response(page, media_type="text/html; charset=utf-8")

    async def upload(request: Request) -> Response:
        served = gateway.served(request)
        headers = web.cors(served.channel, request.headers)
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=headers)
        web.check_origin(served.channel, request)
        visitor = request.query_params.get("visitor", "")
        if (
            frames.VISITOR_ID.fullmatch(visitor) is None
            or chat.store.seen(served.tenant, served.channel.channel_id, visitor) is None
        ):
            raise HTTPException(400, "upload as a known visitor (?visitor=)")
        body = await web.read_limited(request, gateway.settings.max_attachment_bytes)
        if not body:
            raise HTTPException(400, "the file is empty")
        content_type = request.headers.get("content-type", "application/octet-stream")
        if not is_safe_type(content_type):
            content_type = "application/octet-stream"
        name = clean_name(unquote(request.headers.get("x-file-name", "")))
        try:
            blob = gateway.blobs.put(body, content_type=content_type.split(";")[0], name=name)
        except TooLarge:
            raise HTTPException(413, "the file is too large") from None
        return JSONResponse(
            {
                "sha256": blob.sha256,
                "name": blob.name,
                "content_type": blob.content_type,
                "size": blob.size,
                "url": gateway.blobs.url(blob.sha256),
            },
            headers=headers,
        )

    async def offline_message(request: Request) -> Response:
        served = gateway.served(request)
        headers = web.cors(served.channel, request.headers)
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=headers)
        web.check_origin(served.channel, request)
        body = await gateway.body(request)
        customer, message_id, text, language = _left_message(served, body)
        try:
            posted = await chat.leave_message(
                served,
                customer,
                message_id,
                text,
                region=web.region(request.headers),
                language=web.language(language, request.headers),
            )
        except UsherError as exc:
            raise HTTPException(503, f"not stored, try again: {exc}") from None
        return JSONResponse(
            {"conversation": posted.conversation, "duplicate": posted.duplicate},
            headers=headers,
        )

    async def visitors(request: Request) -> Response:
        served = gateway.served(request)
        web.check_console(served.channel, request)
        found = sorted(
            chat.sessions.of_channel(served.tenant, served.channel.channel_id),
            key=lambda v: v.last_seen,
            reverse=True,
        )
        return JSONResponse({"visitors": [v.as_json() for v in found]})

    async def ratings(request: Request) -> Response:
        """The channel's ratings, newest first, as the core keeps them (``ListRatings``), with
        the visitor each conversation belongs to."""
        served = gateway.served(request)
        web.check_console(served.channel, request)
        tenant, channel = served.tenant, served.channel.channel_id
        found = await served.client.list_ratings(
            gw_pb.ListRatingsRequest(channel=channel, page_size=500)
        )
        return JSONResponse(
            {
                "ratings": [
                    {
                        "conversation": r.conversation,
                        "visitor": chat.store.owner(tenant, channel, r.conversation) or "",
                        "score": r.score,
                        "comment": r.comment,
                        "time": r.rate_time.ToDatetime(tzinfo=dt.UTC).isoformat(),
                    }
                    for r in found.ratings
                ]
            }
        )

    return {
        "widget.js": widget_js,
        "widget.css": widget_css,
        "config": config,
        "snippet": snippet_page,
        "demo": demo,
        "upload": upload,
        "offline-message": offline_message,
        "visitors": visitors,
        "ratings": ratings,
    }


def _left_message(served: Served, body: bytes) -> tuple[Customer, str, str, str]:
    """(customer, message id, text, browser language) of a leave-a-message form; 400 unless
    it holds a visitor id, a message id, the text and a usable e-mail address or phone."""
    try:
        data = json.loads(body)
    except ValueError:
        raise HTTPException(400, "the body must be JSON") from None
    if not isinstance(data, dict):
        raise HTTPException(400, "the body must be a JSON object")
    fields = {}
    for key, limit in (
        ("visitor", 64),
        ("id", 64),
        ("name", 200),
        ("phone", 64),
        ("email", 320),
        ("text", MAX_OFFLINE_TEXT),
        ("language", 35),
    ):
        value = data.get(key, "")
        if not isinstance(value, str) or len(value) > limit:
            raise HTTPException(400, f"{key} must be a string of at most {limit} characters")
        fields[key] = value.strip()
    if frames.VISITOR_ID.fullmatch(fields["visitor"]) is None:
        raise HTTPException(400, "visitor is missing or malformed")
    message_id = fields["id"] or secrets.token_hex(8)
    if frames.CLIENT_ID.fullmatch(message_id) is None:
        raise HTTPException(400, "id is malformed")
    if not fields["text"]:
        raise HTTPException(400, "the message is empty")
    phone = ""
    if fields["phone"]:
        default = served.channel.settings.get("default_region") or None
        try:
            phone = to_e164(fields["phone"], default)
        except InvalidPhone:
            raise HTTPException(400, "the phone number is not valid") from None
    email = fields["email"]
    if email and EMAIL.fullmatch(email) is None:
        raise HTTPException(400, "the e-mail address is not valid")
    if not phone and not email:
        raise HTTPException(400, "leave an e-mail address or a phone number")
    customer = Customer(fields["visitor"], fields["name"], phone, email)
    return customer, message_id, fields["text"], fields["language"]
