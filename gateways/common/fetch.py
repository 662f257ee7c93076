"""Reading files from providers and links without trusting their size."""

from __future__ import annotations

import httpx

from gateways.common.blobs import TooLarge


async def read_limited(response: httpx.Response, limit: int) -> bytes:
    """The body of a streamed response (``http.stream(...)``); ``TooLarge`` past ``limit``
    bytes: refused on a larger Content-Length before reading, else where the count passes it."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"{declared} bytes is over the {limit}-byte limit")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(response: httpx.Response, default: str = "application/octet-stream") -> str:
    """The response's content type without parameters (``image/png; q=1`` -> ``image/png``)."""
    return (response.headers.get("content-type") or default).split(";")[0].strip()
