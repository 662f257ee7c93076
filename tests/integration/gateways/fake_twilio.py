"""A local stand-in for Twilio: it checks the gateway's calls to the Messages resource against
Twilio's documented shape (basic auth with the account SID and auth token, form fields To,
From or MessagingServiceSid, Body, MediaUrl, StatusCallback) and serves inbound media the way
Twilio does (authenticated, redirecting to a CDN), and lists the messages created (``GET
Messages.json`` filtered by ``To`` and ``From``, newest first). It builds webhooks signed as
Twilio signs them: ``X-Twilio-Signature`` = base64 HMAC-SHA1 of the URL it called followed by
the POST parameters sorted by name, each name followed by its value. Anything off is answered
400/401 and noted in ``problems``."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import email.utils
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gateways.common.signatures import hmac_sha1_base64
from tests.integration.gateways.kit import eventually, free_port

ACCOUNT = "AC" + "a1" * 16
AUTH_TOKEN = "twilio-auth-token"
NUMBER = "+15005550006"
E164 = re.compile(r"\+[1-9]\d{6,14}")
FIELDS = {"To", "From", "MessagingServiceSid", "Body", "MediaUrl", "StatusCallback"}


def sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def signature(url: str, params: Sequence[tuple[str, str]], token: str = AUTH_TOKEN) -> str:
    data = url + "".join(name + value for name, value in sorted(params))
    return hmac_sha1_base64(token, data.encode())


def signed(
    url: str, params: Sequence[tuple[str, str]], token: str = AUTH_TOKEN
) -> tuple[bytes, dict[str, str]]:
    """A form POST body and its headers, signed for ``url`` (the URL Twilio calls)."""
    return urlencode(params).encode(), {
        "content-type": "application/x-www-form-urlencoded",
        "x-twilio-signature": signature(url, params, token),
    }


@dataclass
class Created:
    """One POST to the Messages resource, as received (repeated fields as lists)."""

    form: dict[str, list[str]]
    sid: str
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def resource(self) -> dict[str, object]:
        """The Message resource as Twilio answers it."""
        form = self.form
        return {
            "sid": self.sid,
            "account_sid": ACCOUNT,
            "to": form["To"][0],
            "from": form.get("From", [None])[0],
            "messaging_service_sid": form.get("MessagingServiceSid", [None])[0],
            "body": form.get("Body", [""])[0],
            "status": "queued",
            "num_media": str(len(form.get("MediaUrl", []))),
            "api_version": "2010-04-01",
            "date_created": email.utils.format_datetime(self.at),
            "uri": f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{self.sid}.json",
        }


@dataclass
class FakeTwilio:
    base_url: str = ""
    created: list[Created] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    media: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    media_requests: list[str] = field(default_factory=list)
    answer_delay: float = 0.0
    """Seconds between taking a message and answering: a client killed meanwhile never learns
    the message was created (what a crash in the middle of a send looks like)."""
    lists: int = 0
    """GET Messages.json calls answered."""

    def settings(self, **more: str) -> dict[str, str]:
        return {"api_base_url": self.base_url, "from_number": NUMBER, **more}

    # --- webhooks -------------------------------------------------------------------------

    def inbound(
        self,
        sender: str,
        body: str,
        *,
        message_sid: str | None = None,
        media: Sequence[tuple[bytes, str]] = (),
    ) -> list[tuple[str, str]]:
        """The parameters Twilio posts for an incoming SMS or MMS."""
        message_sid = message_sid or sid("SM" if not media else "MM")
        params = [
            ("ToCountry", "US"),
            ("SmsMessageSid", message_sid),
            ("NumMedia", str(len(media))),
            ("SmsSid", message_sid),
            ("SmsStatus", "received"),
            ("Body", body),
            ("To", NUMBER),
            ("NumSegments", "1"),
            ("MessageSid", message_sid),
            ("AccountSid", ACCOUNT),
            ("From", sender),
            ("ApiVersion", "2010-04-01"),
        ]
        for i, (data, content_type) in enumerate(media):
            media_sid = sid("ME")
            self.media[media_sid] = (data, content_type)
            message = f"{self.base_url}/2010-04-01/Accounts/{ACCOUNT}/Messages/{message_sid}"
            url = f"{message}/Media/{media_sid}"
            params += [(f"MediaContentType{i}", content_type), (f"MediaUrl{i}", url)]
        return params

    def status(self, message_sid: str, status: str, error_code: str = "") -> list[tuple[str, str]]:
        params = [
            ("MessageSid", message_sid),
            ("SmsSid", message_sid),
            ("MessageStatus", status),
            ("SmsStatus", status),
            ("AccountSid", ACCOUNT),
            ("From", NUMBER),
            ("ApiVersion", "2010-04-01"),
        ]
        if error_code:
            params.append(("ErrorCode", error_code))
        return params

    # --- the API --------------------------------------------------------------------------

    def _refuse(self, status: int, problem: str) -> Response:
        self.problems.append(problem)
        return JSONResponse({"code": 21000, "message": problem, "status": status}, status)

    @staticmethod
    def _authorized(request: Request) -> bool:
        expected = base64.b64encode(f"{ACCOUNT}:{AUTH_TOKEN}".encode()).decode()
        return request.headers.get("authorization") == f"Basic {expected}"

    def _check(self, form: dict[str, list[str]]) -> str | None:
        if set(form) - FIELDS:
            return f"unexpected fields {sorted(set(form) - FIELDS)}"
        if any(len(values) != 1 for name, values in form.items() if name != "MediaUrl"):
            return "a field repeated"
        if not E164.fullmatch(form.get("To", [""])[0]):
            return f"To {form.get('To')} is not E.164"
        if ("From" in form) == ("MessagingServiceSid" in form):
            return "exactly one of From and MessagingServiceSid is needed"
        if "From" in form and form["From"] != [NUMBER]:
            return f"From {form['From']} is not the channel's number"
        body, media = form.get("Body", [""])[0], form.get("MediaUrl", [])
        if not body and not media:
            return "Body or MediaUrl is required"
        if len(body) > 1600 or len(media) > 10:
            return "over 1600 characters or 10 media"
        for url in [*media, *form.get("StatusCallback", [])]:
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                return f"{url!r} is not an absolute URL"
        if "StatusCallback" not in form:
            return "no StatusCallback"
        return None

    async def create_message(self, request: Request) -> Response:
        if request.path_params["account"] != ACCOUNT or not self._authorized(request):
            return self._refuse(401, "Authenticate")
        if request.headers.get("content-type") != "application/x-www-form-urlencoded":
            return self._refuse(400, f"content type {request.headers.get('content-type')}")
        form: dict[str, list[str]] = {}
        for name, value in parse_qsl((await request.body()).decode(), keep_blank_values=True):
            form.setdefault(name, []).append(value)
        problem = self._check(form)
        if problem:
            return self._refuse(400, problem)
        created = Created(form, sid("MM" if "MediaUrl" in form else "SM"))
        self.created.append(created)
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        return JSONResponse(created.resource(), status_code=201)

    async def list_messages(self, request: Request) -> Response:
        if request.path_params["account"] != ACCOUNT or not self._authorized(request):
            return self._refuse(401, "Authenticate")
        query = request.query_params
        if set(query) - {"To", "From", "PageSize", "DateSent", "DateSent<", "DateSent>"}:
            return self._refuse(400, f"unexpected list filters {sorted(query)}")
        found = [
            c
            for c in reversed(self.created)
            if ("To" not in query or c.form["To"] == [query["To"]])
            and ("From" not in query or c.form.get("From") == [query["From"]])
        ]
        size = int(query.get("PageSize", "50"))
        self.lists += 1
        return JSONResponse(
            {"messages": [c.resource() for c in found[:size]], "page": 0, "page_size": size}
        )

    async def fetch_media(self, request: Request) -> Response:
        if request.path_params["account"] != ACCOUNT or not self._authorized(request):
            return self._refuse(401, "media without the account's credentials")
        media_sid = request.path_params["media"]
        self.media_requests.append(media_sid)
        if media_sid not in self.media:
            return JSONResponse({"code": 20404, "status": 404}, 404)
        return RedirectResponse(f"{self.base_url}/cdn/{media_sid}", status_code=307)

    async def cdn(self, request: Request) -> Response:
        data, content_type = self.media[request.path_params["media"]]
        return Response(data, media_type=content_type)

    def app(self) -> Starlette:
        accounts = "/2010-04-01/Accounts/{account}"
        return Starlette(
            routes=[
                Route(f"{accounts}/Messages.json", self.create_message, methods=["POST"]),
                Route(f"{accounts}/Messages.json", self.list_messages, methods=["GET"]),
                Route(f"{accounts}/Messages/{{message}}/Media/{{media}}", self.fetch_media),
                Route("/cdn/{media}", self.cdn),
            ]
        )


@contextlib.asynccontextmanager
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
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
