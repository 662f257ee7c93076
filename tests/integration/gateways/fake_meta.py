"""A local stand-in for Meta's WhatsApp Cloud API, on loopback: it takes ``POST
/{version}/{phone_number_id}/messages`` and the two-step media download, checks every request
against the documented shapes (recording any departure in ``problems``), and builds webhook
notifications signed as Meta signs them (``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of
the raw body with the app secret>``).

Shapes follow Meta's Cloud API reference: messages (text, image/document/... by ``link``,
interactive ``button``/``list``, ``template``), mark-as-read with the optional typing indicator,
media URL retrieval, and the ``whatsapp_business_account`` notification with ``messages`` and
``statuses``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateways.common.signatures import hmac_sha256_hex
from tests.integration.gateways.kit import eventually, free_port

VERSION = "v21.0"
PHONE_NUMBER_ID = "106540352242922"
DISPLAY_NUMBER = "15550001234"
TOKEN = "EAAG-test-token"
APP_SECRET = "app-secret-123"
VERIFY_TOKEN = "verify-me"

MEDIA_TYPES = ("image", "document", "audio", "video", "sticker")
MESSAGE_TYPES = ("text", "interactive", "template", *MEDIA_TYPES)


@dataclass
class StoredMedia:
    data: bytes
    mime_type: str
    fail_times: int = 0
    """Answer 503 to this many downloads first (a transient Meta failure)."""


@dataclass
class FakeMeta:
    url: str = ""
    sent: list[dict[str, Any]] = field(default_factory=list)
    """Message sends accepted, in order."""
    reads: list[dict[str, Any]] = field(default_factory=list)
    """Mark-as-read calls (with or without the typing indicator)."""
    problems: list[str] = field(default_factory=list)
    media: dict[str, StoredMedia] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def messages_of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["type"] == kind]

    def texts(self) -> list[str]:
        return [m["text"]["body"] for m in self.messages_of("text")]

    # -- the API ---------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            self.problems.append(f"{request.url.path}: bad Authorization header")
            return False
        return True

    async def post_message(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, 190, "Invalid OAuth access token")
        if request.path_params["version"] != VERSION:
            self.problems.append(f"version {request.path_params['version']!r}")
        if request.path_params["number"] != PHONE_NUMBER_ID:
            self.problems.append(f"phone number id {request.path_params['number']!r}")
            return _error(400, 100, "Invalid parameter")
        if not request.headers.get("content-type", "").startswith("application/json"):
            self.problems.append("messages body is not JSON")
        body = json.loads(await request.body())
        problems = check_read(body) if "status" in body else check_message(body)
        if problems:
            self.problems.extend(problems)
            return _error(400, 100, "; ".join(problems))
        if "status" in body:
            self.reads.append(body)
            return JSONResponse({"success": True})
        self.sent.append(body)
        wamid = f"wamid.OUT{next(self._ids):06d}"
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                "messages": [{"id": wamid}],
            }
        )

    async def get_media(self, request: Request) -> Response:
        if not self._authorized(request):
            return _error(401, 190, "Invalid OAuth access token")
        media_id = request.path_params["media_id"]
        stored = self.media.get(media_id)
        if stored is None:
            return _error(404, 100, "Unsupported get request")
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "url": f"{self.url}/whatsapp_business/attachments/?mid={media_id}",
                "mime_type": stored.mime_type,
                "sha256": hashlib.sha256(stored.data).hexdigest(),
                "file_size": str(len(stored.data)),
                "id": media_id,
            }
        )

    async def download(self, request: Request) -> Response:
        if not self._authorized(request):
            return Response(status_code=401)
        stored = self.media.get(request.query_params.get("mid", ""))
        if stored is None:
            return Response(status_code=404)
        if stored.fail_times:
            stored.fail_times -= 1
            return Response("try later", status_code=503)
        return Response(stored.data, media_type=stored.mime_type)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/whatsapp_business/attachments/", self.download, methods=["GET"]),
                Route("/{version}/{number}/messages", self.post_message, methods=["POST"]),
                Route("/{version}/{media_id}", self.get_media, methods=["GET"]),
            ]
        )


def _error(status: int, code: int, message: str) -> Response:
    return JSONResponse(
        {"error": {"message": message, "type": "OAuthException", "code": code}},
        status_code=status,
    )


# -- request shapes --------------------------------------------------------------------------


def _keys(obj: dict[str, Any], allowed: set[str], where: str) -> list[str]:
    extra = set(obj) - allowed
    return [f"{where}: unexpected {sorted(extra)}"] if extra else []


def check_read(body: dict[str, Any]) -> list[str]:
    problems = _keys(
        body, {"messaging_product", "status", "message_id", "typing_indicator"}, "read"
    )
    if body.get("messaging_product") != "whatsapp" or body.get("status") != "read":
        problems.append("read: messaging_product/status")
    if not str(body.get("message_id", "")).startswith("wamid."):
        problems.append("read: message_id is not a wamid")
    if "typing_indicator" in body and body["typing_indicator"] != {"type": "text"}:
        problems.append("read: typing_indicator")
    return problems


def check_message(body: dict[str, Any]) -> list[str]:
    kind = body.get("type")
    allowed = {"messaging_product", "recipient_type", "to", "type", str(kind)}
    problems = _keys(body, allowed | {"biz_opaque_callback_data"}, "msg")
    if len(str(body.get("biz_opaque_callback_data", ""))) > 512:
        problems.append("biz_opaque_callback_data over 512 characters")
    if body.get("messaging_product") != "whatsapp":
        problems.append("messaging_product is not whatsapp")
    if body.get("recipient_type") != "individual":
        problems.append("recipient_type is not individual")
    if not str(body.get("to", "")).isdigit():
        problems.append(f"to {body.get('to')!r} is not international digits")
    if kind not in MESSAGE_TYPES or not isinstance(body.get(kind), dict):
        return [*problems, f"type {kind!r} without its object"]
    content = body[kind]
    if kind == "text":
        problems += _keys(content, {"body", "preview_url"}, "text")
        if not content.get("body") or len(content["body"]) > 4096:
            problems.append("text.body empty or over 4096")
        if not isinstance(content.get("preview_url", False), bool):
            problems.append("text.preview_url is not a boolean")
    elif kind in MEDIA_TYPES:
        allowed = {"link"} | ({"caption"} if kind in ("image", "video", "document") else set())
        problems += _keys(content, allowed | ({"filename"} if kind == "document" else set()), kind)
        if not str(content.get("link", "")).startswith(("https://", "http://")):
            problems.append(f"{kind}.link is not a URL")
    elif kind == "interactive":
        problems += check_interactive(content)
    elif kind == "template":
        problems += _keys(content, {"name", "language", "components"}, "template")
        if not content.get("name") or not isinstance(content.get("language"), dict):
            problems.append("template: name and language")
        elif not content["language"].get("code"):
            problems.append("template.language.code")
    return problems


def check_interactive(content: dict[str, Any]) -> list[str]:
    problems = _keys(content, {"type", "header", "body", "footer", "action"}, "interactive")
    body = content.get("body", {})
    action = content.get("action", {})
    if not isinstance(body, dict) or not body.get("text"):
        problems.append("interactive.body.text is required")
    if "header" in content:  # buttons take any header type; lists take text only
        header = content["header"]
        problems += _keys(header, {"type", "text"}, "interactive.header")
        if header.get("type") != "text" or not 1 <= len(header.get("text", "")) <= 60:
            problems.append("interactive.header: a text header of 1-60 characters")
    if "footer" in content:
        problems += _keys(content["footer"], {"text"}, "interactive.footer")
        if not 1 <= len(content["footer"].get("text", "")) <= 60:
            problems.append("interactive.footer.text: 1-60 characters")
    if content.get("type") == "button":
        buttons = action.get("buttons", [])
        if not 1 <= len(buttons) <= 3 or len(body.get("text", "")) > 1024:
            problems.append("button: 1-3 buttons, body up to 1024")
        for button in buttons:
            reply = button.get("reply", {})
            if button.get("type") != "reply" or not reply.get("id") or not reply.get("title"):
                problems.append(f"button: {button!r}")
            elif len(reply["title"]) > 20 or len(reply["id"]) > 256:
                problems.append(f"button too long: {reply!r}")
    elif content.get("type") == "list":
        sections = action.get("sections", [])
        rows = [row for section in sections for row in section.get("rows", [])]
        if not action.get("button") or len(action["button"]) > 20:
            problems.append("list: action.button is required, up to 20")
        if len(body.get("text", "")) > 4096:
            problems.append("list: body up to 4096")
        if not 1 <= len(sections) <= 10 or not 1 <= len(rows) <= 10:
            problems.append("list: 1-10 sections, 1-10 rows in all")
        if len(sections) > 1 and not all(s.get("title") for s in sections):
            problems.append("list: sections need titles when there are several")
        for row in rows:
            if not row.get("id") or not row.get("title") or len(row["title"]) > 24:
                problems.append(f"list row: {row!r}")
            if len(row.get("description", "")) > 72 or len(row["id"]) > 200:
                problems.append(f"list row too long: {row!r}")
    else:
        problems.append(f"interactive.type {content.get('type')!r}")
    return problems


# -- webhooks as Meta sends them -------------------------------------------------------------


def notification(*changes: dict[str, Any], entries: int = 1) -> dict[str, Any]:
    """A ``whatsapp_business_account`` notification: the ``value``s given, spread over
    ``entries`` entries."""
    per = max(1, -(-len(changes) // entries))
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [{"value": v, "field": "messages"} for v in changes[i : i + per]],
            }
            for i in range(0, len(changes), per)
        ],
    }


def _value(number: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": DISPLAY_NUMBER, "phone_number_id": number},
    }


def messages(
    wa_id: str, name: str, *messages: dict[str, Any], number: str = PHONE_NUMBER_ID
) -> dict[str, Any]:
    """A change ``value`` with messages from one WhatsApp user."""
    value = _value(number)
    value["contacts"] = [{"profile": {"name": name}, "wa_id": wa_id}]
    value["messages"] = [dict(m, **{"from": wa_id}) for m in messages]
    return value


def statuses(*statuses: dict[str, Any], number: str = PHONE_NUMBER_ID) -> dict[str, Any]:
    value = _value(number)
    value["statuses"] = list(statuses)
    return value


def message(wamid: str, kind: str, content: Any, *, at: float | None = None) -> dict[str, Any]:
    """One message object (``from`` is filled in by ``messages``)."""
    return {"id": wamid, "timestamp": str(int(at or time.time())), "type": kind, kind: content}


def status(wamid: str, state: str, recipient: str, callback_data: str = "") -> dict[str, Any]:
    found = {
        "id": wamid,
        "status": state,
        "timestamp": str(int(time.time())),
        "recipient_id": recipient,
    }
    if callback_data:  # Meta echoes the message's biz_opaque_callback_data
        found["biz_opaque_callback_data"] = callback_data
    return found


def signed(payload: dict[str, Any], secret: str = APP_SECRET) -> tuple[bytes, dict[str, str]]:
    """The body as Meta posts it and its headers, signed with the app secret."""
    body = json.dumps(payload).encode()
    return body, {
        "content-type": "application/json",
        "x-hub-signature-256": "sha256=" + hmac_sha256_hex(secret, body),
    }


@contextlib.asynccontextmanager
async def fake_meta() -> AsyncIterator[FakeMeta]:
    fake = FakeMeta()
    port = free_port()
    fake.url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(
        uvicorn.Config(
            fake.app(),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started)
    try:
        yield fake
    finally:
        server.should_exit = True
        await task
