"""Who scanned, without keeping who: a visitor is a 16-byte hash of the client's address and
user agent salted with the day's random salt. Salts are dropped after a day or two
(``core.store.qr_codes``), so a stored hash can no longer be tied to an address."""

from __future__ import annotations

import hashlib
from typing import Final

VISITOR_BYTES: Final = 16


def visitor(salt: bytes, tenant: str, code: str, address: str, user_agent: str) -> bytes:
    """The visitor's hash for one code on the day of ``salt``."""
    digest = hashlib.sha256(salt)
    for part in (tenant, code, address, user_agent):
        digest.update(part.encode("utf-8", "replace"))
        digest.update(b"\x00")
    return digest.digest()[:VISITOR_BYTES]
