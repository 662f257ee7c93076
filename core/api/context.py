"""What the servicers work with: the shards (through a dispatcher), the feeds, and the store.

Servicers never touch Ray, SQL or Redis directly; they translate requests into engine commands
(``submit``), read records through the store modules, and serve streams from the feeds. Tests
build an ``ApiContext`` over in-process shards; ``usher serve`` over Ray actors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

import asyncpg
import redis.asyncio as aioredis

from core.routing import commands as c
from core.runtime.feed import Feeds
from core.runtime.live import TenantLive
from core.runtime.shard import Failure, Outcome
from core.store.blocklist import Blocklist
from core.store.customers import Customers
from core.store.reads import Reads
from core.store.records import Records

Submit = Callable[[c.Command], Awaitable[Outcome]]
DEFAULT_PUBLIC_URL = "http://127.0.0.1:8090"
"""The web port's address on this machine with ``usher serve``'s defaults."""


def within_deadline(submit: Submit, deadline: ContextVar[float]) -> Submit:
    """``submit`` bounded by the calling RPC's deadline (``DEADLINE_EXCEEDED`` when it passes;
    the command may still take effect, as the contract says)."""

    async def bounded(command: c.Command) -> Outcome:
        until = deadline.get(None)
        if until is None:
            return await submit(command)
        remaining = until - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(submit(command), max(0.0, remaining))
        except TimeoutError:
            return Outcome(failure=Failure("DEADLINE_EXCEEDED", "the call's deadline passed"))

    return bounded


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, from the verified credential (never from the request)."""

    tenant: str
    role: str
    """``gateway``, ``agent``, ``supervisor`` or ``admin``."""
    agent_id: str | None = None
    credential_id: str = ""


@dataclass(frozen=True, slots=True)
class ApiContext:
    submit: Submit
    """Run one engine command on its tenant's shard; the outcome is final (committed or not)."""
    feeds: Feeds
    pool: asyncpg.Pool
    redis: aioredis.Redis | None
    records: Records
    customers: Customers
    """Customer ids from channel identities (``core.store.customers``), cached per process."""
    live: Callable[[str], Awaitable[TenantLive]] | None = None
    """A tenant's live figures from the shard that owns it (None: this front door has none)."""
    public_url: str = ""
    """The web port's address as customers reach it (``usher serve --public-url``), the base
    of QR codes' tracking links (``{public_url}/q/{code}``); empty: ``DEFAULT_PUBLIC_URL``."""
    reads: Reads = field(init=False)
    """Reads of stored records (``core.store.reads``), over ``pool``."""
    blocklist: Blocklist = field(init=False)
    """The tenant blocklists (``core.store.blocklist``), cached for the inbound path: one per
    context, so the blocklist's door and the gateways' share the cache."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "reads", Reads(self.pool))
        object.__setattr__(self, "blocklist", Blocklist(self.pool))
