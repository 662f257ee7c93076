"""Twilio's request signature: ``X-Twilio-Signature`` is the base64 HMAC-SHA1, under the auth
token, of the full URL Twilio called followed by every POST parameter sorted by name, each
name immediately followed by its value.

The URL must be the one Twilio called, which a proxy in front of the gateway hides: the
gateway tries its ``public_url`` with the request's path and query, then the URL it received,
each with and without the scheme's default port (Twilio's own SDKs accept either).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit

from gateways.common.signatures import hmac_sha1_base64, same

DEFAULT_PORTS = {"https": 443, "http": 80}


def sign(auth_token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    data = url + "".join(name + value for name, value in sorted(params))
    return hmac_sha1_base64(auth_token, data.encode())


def _port_variants(url: str) -> list[str]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    without = urlunsplit(parts._replace(netloc=host))
    port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    with_port = urlunsplit(parts._replace(netloc=f"{host}:{port}")) if port else without
    return [url, without, with_port]


def candidate_urls(public_url: str, path_and_query: str, received_url: str) -> list[str]:
    """The URLs Twilio may have signed, most likely first, without repeats."""
    bases = [public_url.rstrip("/") + path_and_query] if public_url else []
    bases.append(received_url)
    found: list[str] = []
    for base in bases:
        for url in _port_variants(base):
            if url not in found:
                found.append(url)
    return found


def verify(
    auth_token: str, given: str | None, urls: Sequence[str], params: Sequence[tuple[str, str]]
) -> bool:
    """Whether ``given`` signs ``params`` for one of ``urls`` (each compared in constant time)."""
    if not given:
        return False
    return any(same(sign(auth_token, url, params), given) for url in urls)
