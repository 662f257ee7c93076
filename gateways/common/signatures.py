"""Webhook signatures: HMACs over the raw body, compared in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac


def hmac_sha256_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def hmac_sha256_base64(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def hmac_sha1_base64(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()


def same(expected: str, given: str | None) -> bool:
    """Whether ``given`` equals ``expected``, in time independent of where they differ."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
