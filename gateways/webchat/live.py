"""The visitor's WebSocket, ``/{tenant}/{channel}/ws``: a ``hello`` first, then the widget's
frames in and the visitor's history and outbound items out (protocol in ``frames``).

Refusals: unknown tenant or channel -> HTTP 404, an Origin the channel does not allow -> HTTP
403 (both before the upgrade); a frame over ``max_body_bytes`` -> close 1009; a binary or
malformed frame -> close 1003; no hello within ``HELLO_SECONDS`` -> close 1008. Nothing is
stored for a refused frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import secrets
import time
from typing import Any

import structlog
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect
from usher.client import UsherError

from gateways.common.directory import Served
from gateways.common.inbox import Customer
from gateways.common.phones import InvalidPhone, to_e164
from gateways.webchat import frames, web
from gateways.webchat.chat import Chat, Refused, key_of
from gateways.webchat.sessions import Connection, Visit

log = structlog.get_logger(__name__)

HELLO_SECONDS = 10.0
EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}")
CLOSE_TOO_BIG = 1009
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008


class Closing(Exception):
    """End the socket with ``code``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def new_visitor_id() -> str:
    return "v" + secrets.token_urlsafe(18)


def customer_of(
    served: Served, visitor: str, form: frames.Hello | frames.Profile, region: str
) -> Customer:
    """The visitor as the pre-chat form described them; unusable phone or e-mail dropped."""
    phone = ""
    if form.phone.strip():
        default = served.channel.settings.get("default_region") or region or None
        with contextlib.suppress(InvalidPhone):
            phone = to_e164(form.phone, default)
    email = form.email.strip() if EMAIL.fullmatch(form.email.strip()) else ""
    return Customer(visitor, form.name.strip()[:200], phone, email)


async def receive(websocket: WebSocket, limit: int) -> frames.Frame:
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    text = message.get("text")
    if text is None:
        raise Closing(CLOSE_UNSUPPORTED, "only JSON text frames are accepted")
    if len(text.encode()) > limit:
        raise Closing(CLOSE_TOO_BIG, f"frames are limited to {limit} bytes")
    try:
        return frames.parse(text)
    except frames.Malformed as exc:
        raise Closing(CLOSE_UNSUPPORTED, str(exc)[:100]) from None


async def serve_socket(chat: Chat, websocket: WebSocket) -> None:
    """One visitor connection, until either side closes."""
    tenant = websocket.path_params.get("tenant", "")
    channel = websocket.path_params.get("channel", "")
    served = chat.gateway.directory.lookup(tenant, channel)
    if served is None:
        await websocket.send_denial_response(
            JSONResponse({"error": f"no channel {channel!r} for tenant {tenant!r}"}, 404)
        )
        return
    if not web.origin_allowed(served.channel, websocket.headers.get("origin")):
        await websocket.send_denial_response(
            JSONResponse({"error": "this site may not use the chat"}, 403)
        )
        return
    await websocket.accept()
    limit = chat.gateway.settings.max_body_bytes
    try:
        try:
            hello = await asyncio.wait_for(receive(websocket, limit), HELLO_SECONDS)
        except TimeoutError:
            raise Closing(CLOSE_POLICY, "say hello first") from None
        if not isinstance(hello, frames.Hello):
            raise Closing(CLOSE_POLICY, "say hello first")
        await _session(chat, served, websocket, hello, limit)
    except Closing as closing:
        with contextlib.suppress(Exception):
            await websocket.close(closing.code, closing.reason)
    except WebSocketDisconnect:
        pass


async def _session(
    chat: Chat, served: Served, websocket: WebSocket, hello: frames.Hello, limit: int
) -> None:
    visitor = hello.visitor or new_visitor_id()
    tenant, channel = served.tenant, served.channel.channel_id
    region = web.region(websocket.headers)
    now = time.time()
    seen = chat.store.visit(tenant, channel, visitor, now=now)
    visit = Visit(
        tenant,
        channel,
        visitor,
        customer_of(served, visitor, hello, region),
        hello.page,
        hello.referrer,
        hello.title,
        region,
        web.language(hello.language, websocket.headers),
        seen.first_seen,
        dt.datetime.fromtimestamp(now, dt.UTC),
        seen.visits,
        reference=hello.reference,
    )
    connection = Connection()
    key = key_of(served, visitor)
    chat.sessions.join(visit, connection)
    writer: asyncio.Task[None] | None = None
    try:
        found = chat.store.open_conversation(tenant, channel, visitor)
        await websocket.send_json(
            {
                "type": "welcome",
                "visitor": visitor,
                "returning": seen.visits > 1,
                "conversation": found[0] if found else "",
                "customer": {
                    "name": visit.customer.name,
                    "phone": visit.customer.phone,
                    "email": visit.customer.email,
                },
            }
        )
        replayed = hello.after
        for entry in chat.store.history(tenant, channel, visitor, after=hello.after):
            await websocket.send_json(entry)
            replayed = entry["seq"]
        await websocket.send_json({"type": "ready", "seq": replayed})
        writer = asyncio.create_task(_write(websocket, connection, replayed))
        while True:
            frame = await receive(websocket, limit)
            reply = await _handle(chat, served, visit, frame)
            if reply is not None:
                connection.put(reply)
    finally:
        chat.sessions.leave(key, connection)
        chat.store.touch(tenant, channel, visitor, now=time.time())
        if writer is not None:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer


async def _write(websocket: WebSocket, connection: Connection, replayed: int) -> None:
    """The connection's only sender once the history is replayed: drops what the replay
    already carried, closes the socket when the connection fell behind."""
    while True:
        frame = await connection.outbox.get()
        if frame is None:
            await websocket.close(CLOSE_POLICY, "too far behind: reconnect")
            return
        if frame.get("seq", replayed + 1) <= replayed:
            continue
        await websocket.send_json(frame)


async def _handle(
    chat: Chat, served: Served, visit: Visit, frame: frames.Frame
) -> dict[str, Any] | None:
    """Carry out one frame; what to answer the widget, if anything."""
    try:
        if isinstance(frame, frames.Say):
            return await chat.say(served, visit, frame)
        if isinstance(frame, frames.Profile):
            visit.customer = customer_of(served, visit.visitor, frame, visit.region)
            return {"type": "profile", "name": visit.customer.name}
        if isinstance(frame, frames.Typing):
            await chat.typing(served, visit.visitor, frame.active)
        elif isinstance(frame, frames.Read):
            await chat.read(served, visit.visitor, frame.message)
        elif isinstance(frame, frames.Rate):
            await chat.rate(served, visit.visitor, frame)
        elif isinstance(frame, frames.Leave):
            await chat.leave(served, visit.visitor)
        else:
            raise Closing(CLOSE_POLICY, "hello only once")
    except Refused as exc:
        return {"type": "error", "id": getattr(frame, "id", ""), "error": str(exc)}
    except UsherError as exc:
        log.warning("core call failed", visitor=visit.visitor, error=str(exc))
        return {
            "type": "error",
            "id": getattr(frame, "id", ""),
            "error": "not delivered, try again",
            "retry": True,
        }
    return None
