"""The agent and supervisor web console, served at ``/console`` on the web port.

The console's source is TypeScript under ``console/`` at the repository's root; ``make console``
builds it into ``assets/`` here (checked in and shipped in the package, so serving it needs no
Node.js). ``console_app()`` serves those files: ``index.html`` is revalidated on every load
(``no-cache``) and names the bundle by its content hash, so the hashed files are cached for a
year (``immutable``). The console calls the API on the same origin, so it needs no CORS.
"""

from __future__ import annotations

import os
from os import PathLike
from pathlib import Path
from typing import Final

from starlette.exceptions import HTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

ASSETS: Final = Path(__file__).parent / "assets"
PREFIX: Final = "/console"
INDEX_CACHE: Final = "no-cache"
HASHED_CACHE: Final = "public, max-age=31536000, immutable"
SECURITY_HEADERS: Final = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    # the console's own script and style, the API on its origin; attachments and avatars by link
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data: https:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
}


def cache_control(path: str) -> str:
    """The Cache-Control of a file under ``/console/``: the page is revalidated, hashed files
    are kept."""
    name = path.rsplit("/", 1)[-1]
    return INDEX_CACHE if name in ("", "index.html") else HASHED_CACHE


class _Assets(StaticFiles):
    """The built files with their cache and security headers; a missing one is a plain 404."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as missing:
            return PlainTextResponse(missing.detail, status_code=missing.status_code)

    def file_response(
        self,
        full_path: PathLike[str] | str,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = cache_control(str(scope["path"]))
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        return response


def console_app(assets: Path = ASSETS) -> ASGIApp:
    """The console's files for paths under ``/console`` (``mounted`` names the prefix as the
    scope's ``root_path``); gzip for the clients that accept it."""
    return GZipMiddleware(_Assets(directory=assets, html=True), minimum_size=1024)


def is_console(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def mounted(api: ASGIApp, console: ASGIApp | None = None) -> ASGIApp:
    """``api`` with the console at ``/console`` beside it (``/console`` redirects to
    ``/console/``, which keeps the page's relative links right)."""
    served = console if console is not None else console_app()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not is_console(path):
            await api(scope, receive, send)
            return
        if path == PREFIX:
            query = scope.get("query_string", b"").decode("latin-1")
            target = PREFIX + "/" + (f"?{query}" if query else "")
            await RedirectResponse(target, status_code=308)(scope, receive, send)
            return
        inner = dict(scope)
        inner["root_path"] = scope.get("root_path", "") + PREFIX
        await served(inner, receive, send)

    return app
