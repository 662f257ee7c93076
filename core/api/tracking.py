"""QR codes' tracking links: ``GET /q/{code}`` on the web port (``core.api.web``).

An active code within its dates answers 302 to its target and counts the scan
(``core.store.qr_scans.record_scan``: per day of the tenant's zone, unique by
``core.qr.visits.visitor`` of the client's address and user agent, never stored as such). Any
other answers a small page instead of the target: 410 for a deactivated or expired code, 200
for one whose campaign has not started, 404 for an unknown code, 503 when the store is down.
``HEAD`` answers the same without counting (link previews). Answers are ``no-store``, so every
scan reaches Usher. The client's address is the socket's, or ``X-Forwarded-For``'s from a
proxy uvicorn trusts (``FORWARDED_ALLOW_IPS``; 127.0.0.1 by default).
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Final

import asyncpg
import structlog
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from core.qr import visits
from core.store import qr_scans
from core.store.errors import StoreError
from core.store.qr_codes import State, resolve

log = structlog.get_logger(__name__)

PREFIX: Final = "/q/"
_HEADERS: Final = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body{{font:17px/1.5 system-ui,sans-serif;margin:0;display:flex;min-height:100vh;
align-items:center;justify-content:center;background:#f6f7f9;color:#222}}
main{{max-width:28rem;padding:2rem;text-align:center}}h1{{font-size:1.4rem}}</style>
</head><body><main><h1>{title}</h1><p>{text}</p></main></body></html>
"""


def page(status: int, title: str, text: str) -> HTMLResponse:
    """A friendly page (``title`` and ``text`` are escaped here)."""
    body = _PAGE.format(title=html.escape(title), text=html.escape(text))
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


class TrackingLinks:
    """The ASGI app answering ``/q/{code}`` over the store's pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._salts = qr_scans.Salts(pool)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        response = await self.answer(request)
        await response(scope, receive, send)

    async def answer(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            return Response(status_code=405, headers={"Allow": "GET, HEAD", **_HEADERS})
        code = request.url.path.removeprefix(PREFIX).strip("/")
        try:
            return await self._answer(request, code)
        except StoreError as exc:
            log.warning("tracking link unavailable", code=code[:32], error=str(exc))
            return page(503, "Please try again", "This link is unavailable for a moment.")

    async def _answer(self, request: Request, code: str) -> Response:
        link = await resolve(self._pool, code)
        if link is None:
            return page(404, "QR code not found", "This QR code is not known here.")
        now = dt.datetime.now(dt.UTC)
        state = link.state(now)
        if state is State.SCHEDULED:
            assert link.start_at is not None
            return page(
                200,
                link.display_name,
                f"This campaign starts on {link.start_at:%Y-%m-%d}. Please come back then.",
            )
        if state is not State.ACTIVE:
            return page(
                410, link.display_name, "This campaign has ended. Thank you for your interest."
            )
        if request.method == "GET":
            day = await qr_scans.today(self._pool, link.tenant, now)
            salt = await self._salts.of(day)
            address = request.client.host if request.client else ""
            agent = request.headers.get("user-agent", "")
            visitor = visits.visitor(salt, link.tenant, link.code, address, agent)
            await qr_scans.record_scan(self._pool, link.tenant, link.code, day, visitor)
        return RedirectResponse(link.target_url, status_code=302, headers=_HEADERS)
