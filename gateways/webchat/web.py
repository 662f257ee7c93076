"""HTTP details of a browser channel: the Origin rule (``allowed_origins``), CORS headers, the
visitor's region and language from request headers, the console's Bearer token, and reading a
body under a limit."""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request

from gateways.common.directory import ChannelConfig
from gateways.common.signatures import same

REGION_HEADERS = ("cf-ipcountry", "x-region", "x-country-code", "cloudfront-viewer-country")
_COUNTRY = re.compile(r"[A-Za-z]{2}")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")


def _normal(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def allowed_origins(channel: ChannelConfig) -> frozenset[str]:
    """The channel's ``allowed_origins`` (comma list, e.g. ``https://shop.example``); empty:
    any origin."""
    raw = channel.settings.get("allowed_origins", "")
    return frozenset(_normal(o) for o in raw.split(",") if o.strip())


def origin_allowed(channel: ChannelConfig, origin: str | None) -> bool:
    allowed = allowed_origins(channel)
    if not allowed or "*" in allowed:
        return True
    return origin is not None and _normal(origin) in allowed


def check_origin(channel: ChannelConfig, connection: HTTPConnection) -> None:
    """403 when the request comes from a page the channel does not allow."""
    if not origin_allowed(channel, connection.headers.get("origin")):
        raise HTTPException(403, "this site may not use the chat")


def cors(channel: ChannelConfig, headers: Headers) -> dict[str, str]:
    """CORS response headers for a widget request from an allowed page."""
    origin = headers.get("origin")
    if origin is None or not origin_allowed(channel, origin):
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type, X-File-Name, X-Visitor",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def region(headers: Headers) -> str:
    """The visitor's country (ISO 3166 alpha-2, upper case): from a CDN or proxy header, else
    the region of the first Accept-Language tag (``en-HK`` -> ``HK``); empty if neither says."""
    for name in REGION_HEADERS:
        value = headers.get(name, "").strip()
        if _COUNTRY.fullmatch(value) and value.upper() not in ("XX", "T1"):
            return value.upper()
    for part in language_tags(headers.get("accept-language", "")):
        for subtag in part.split("-")[1:]:
            if _COUNTRY.fullmatch(subtag):
                return subtag.upper()
    return ""


def language_tags(accept_language: str) -> list[str]:
    """The tags of an Accept-Language header, in the order given (quality ignored)."""
    tags = []
    for part in accept_language.split(","):
        tag = part.split(";")[0].strip()
        if _LANGUAGE.fullmatch(tag):
            tags.append(tag)
    return tags


def language(given: str, headers: Headers) -> str:
    """The widget's ``navigator.language`` if well formed, else Accept-Language's first tag."""
    if _LANGUAGE.fullmatch(given):
        return given
    tags = language_tags(headers.get("accept-language", ""))
    return tags[0] if tags else ""


def check_console(channel: ChannelConfig, request: Request) -> None:
    """The console's ``Authorization: Bearer <console_token>`` (a channel secret); 401 else,
    403 when the channel has no console token."""
    expected = channel.secrets.get("console_token", "")
    if not expected:
        raise HTTPException(403, "the channel has no console_token secret")
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() != "bearer" or not same(expected, token.strip()):
        raise HTTPException(401, "a valid console token is required")


async def read_limited(request: Request, limit: int) -> bytes:
    """The raw body; 413 past ``limit`` bytes (checked as it streams in)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the body is over {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
