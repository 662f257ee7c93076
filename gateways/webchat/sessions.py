"""Connected visitors: each one's open WebSockets (a visitor may have several tabs) and what the
visitor list shows about them (page, referrer, region, first and last seen).

``push`` never blocks the outbound loop: each connection has a bounded queue, and a connection
that falls ``OUTBOX`` frames behind is told to close (the widget reconnects and replays what it
missed from the history).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from gateways.common.inbox import Customer

OUTBOX = 500
Key = tuple[str, str, str]
"""(tenant, channel, visitor)."""


@dataclass(eq=False)
class Connection:
    """One open WebSocket. ``None`` in its outbox means: close, you fell behind."""

    outbox: asyncio.Queue[dict[str, Any] | None] = field(
        default_factory=lambda: asyncio.Queue(OUTBOX)
    )

    def put(self, frame: dict[str, Any]) -> None:
        try:
            self.outbox.put_nowait(frame)
        except asyncio.QueueFull:
            while not self.outbox.empty():
                self.outbox.get_nowait()
            self.outbox.put_nowait(None)


@dataclass(eq=False)
class Visit:
    """A connected visitor, as of their latest page."""

    tenant: str
    channel: str
    visitor: str
    customer: Customer
    page: str
    referrer: str
    title: str
    region: str
    language: str
    first_seen: dt.datetime
    last_seen: dt.datetime
    visits: int
    reference: str = ""
    """The QR code's or campaign link's reference of their latest page (``Hello.reference``):
    a conversation their message starts carries it."""
    connections: set[Connection] = field(default_factory=set)

    def as_json(self) -> dict[str, Any]:
        return {
            "visitor": self.visitor,
            "name": self.customer.name,
            "page_url": self.page,
            "page_title": self.title,
            "referrer": self.referrer,
            "region": self.region,
            "language": self.language,
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "visits": self.visits,
            "returning": self.visits > 1,
            "tabs": len(self.connections),
        }


class Sessions:
    """See the module docstring."""

    def __init__(self) -> None:
        self._visits: dict[Key, Visit] = {}

    def join(self, visit: Visit, connection: Connection) -> Visit:
        """Add a connection; the visit's details are replaced by the newest page's."""
        key = (visit.tenant, visit.channel, visit.visitor)
        known = self._visits.get(key)
        if known is not None:
            visit.connections = known.connections
        visit.connections.add(connection)
        self._visits[key] = visit
        return visit

    def leave(self, key: Key, connection: Connection) -> None:
        visit = self._visits.get(key)
        if visit is None:
            return
        visit.connections.discard(connection)
        if not visit.connections:
            del self._visits[key]

    def get(self, key: Key) -> Visit | None:
        return self._visits.get(key)

    def push(self, key: Key, frame: dict[str, Any]) -> int:
        """Queue ``frame`` on each of the visitor's connections; how many there are."""
        visit = self._visits.get(key)
        if visit is None:
            return 0
        for connection in visit.connections:
            connection.put(frame)
        return len(visit.connections)

    def of_channel(self, tenant: str, channel: str) -> Iterator[Visit]:
        for (t, c, _), visit in list(self._visits.items()):
            if (t, c) == (tenant, channel):
                yield visit
