"""A webhook step's request and the reading of its answer: pure (the runtime does the POST).

The request is ``POST url`` with the interpreter's JSON body (``WebhookCall.body``: the bot,
step, conversation, customer, channel, language, the customer's last text, collected fields,
tags and the time) and the header ``X-Usher-Signature: sha256=<hex HMAC-SHA256 of the body
with the bot's secret>``; the receiver recomputes it over the raw body (``verify``). The body
carries ``time`` and ``effect``, so a replayed request can be told from a new one.

The answer: a 2xx status with an empty body or a JSON object, whose optional ``text`` (a
string of at most 4,096 characters) the bot says and whose optional ``next_step`` (a string)
chooses where the flow goes on, among the step's ``allowed_next``. Anything else (another
status, a body over 64 KiB or not such an object, a timeout) is a failure: the step's fallback.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Final

from core.bots.interpreter import WebhookCall, WebhookResult

SIGNATURE_HEADER: Final = "X-Usher-Signature"
MAX_RESPONSE_BYTES: Final = 64 * 1024
MAX_TEXT: Final = 4_096


@dataclass(frozen=True, slots=True)
class SignedRequest:
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    timeout: float
    """Seconds."""


def signature(secret: str, body: bytes) -> str:
    """The header's value for ``body``: ``sha256=<hex HMAC-SHA256>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """Whether ``header`` is the signature of ``body`` with ``secret`` (constant time)."""
    return hmac.compare_digest(signature(secret, body), header)


def signed_request(call: WebhookCall, secret: str) -> SignedRequest:
    body = call.body.encode()
    return SignedRequest(
        url=call.url,
        headers=(
            ("Content-Type", "application/json"),
            (SIGNATURE_HEADER, signature(secret, body)),
        ),
        body=body,
        timeout=call.timeout_ms / 1000,
    )


def failed(effect: int) -> WebhookResult:
    """A timeout, a refused connection, any failure to get an answer."""
    return WebhookResult(effect=effect, ok=False)


def parse_response(effect: int, status: int, body: bytes) -> WebhookResult:
    """The flow's reading of an answer (see the module docstring)."""
    if not 200 <= status < 300 or len(body) > MAX_RESPONSE_BYTES:
        return failed(effect)
    if not body.strip():
        return WebhookResult(effect=effect, ok=True)
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return failed(effect)
    if not isinstance(document, dict):
        return failed(effect)
    text = document.get("text", "")
    next_step = document.get("next_step", "")
    if not isinstance(text, str) or not isinstance(next_step, str):
        return failed(effect)
    if len(text) > MAX_TEXT or "\x00" in text or len(next_step) > 64:
        return failed(effect)
    return WebhookResult(effect=effect, ok=True, next_step=next_step, text=text)
