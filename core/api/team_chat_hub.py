"""Team chat's fan-out: new team messages to this front door's ``StreamTeamChat`` streams.

A message is stored first (``core.store.team_chat``; numbered per tenant, committed in number
order), then announced: to this process's hub at once, and to every front door through Redis
pub/sub (``{prefix}team:{tenant}``, the payload its id). An announcement only wakes the hub;
what is delivered is read from the store: per tenant with open streams, one pump reads the
messages after the last id it delivered (one read per wake, whatever the number of streams)
and hands each to the inboxes of its thread's members. Pub/sub is at most once, so each pump
also reads every ``interval`` seconds: a lost announcement shows up at most that late. Since
numbers commit in order, "after the last id" never skips a message.

An inbox that falls ``limit`` messages behind is cut off (``SlowConsumer``); its stream
resumes from the last id it sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any, Final

import redis.asyncio as aioredis
import structlog

from core.runtime.feed import SlowConsumer
from core.store.team_chat import TeamChat, TeamMessage

log = structlog.get_logger(__name__)

INTERVAL: Final = 2.0
BATCH: Final = 500
INBOX_LIMIT: Final = 1_000


class Inbox:
    """One stream's messages, in id order, as its pump delivers them."""

    def __init__(self, tenant: str, agent_id: str, limit: int = INBOX_LIMIT) -> None:
        self.tenant = tenant
        self.agent_id = agent_id
        self._limit = limit
        self._queue: asyncio.Queue[TeamMessage | SlowConsumer] = asyncio.Queue()
        self.closed = False

    def offer(self, message: TeamMessage) -> None:
        if self.closed:
            return
        if self._queue.qsize() >= self._limit:
            self.closed = True
            self._queue.put_nowait(SlowConsumer(f"fell {self._limit} team messages behind"))
            return
        self._queue.put_nowait(message)

    async def get(self) -> TeamMessage:
        """The next message; raises ``SlowConsumer`` once cut off."""
        got = await self._queue.get()
        if isinstance(got, SlowConsumer):
            raise got
        return got


@dataclass(slots=True)
class _Pump:
    tenant: str
    last: int
    inboxes: set[Inbox] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class TeamChatHub:
    """See the module docstring."""

    def __init__(
        self,
        store: TeamChat,
        redis: aioredis.Redis | None,
        *,
        prefix: str = "usher:",
        interval: float = INTERVAL,
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        self._store = store
        self._redis = redis
        self._prefix = prefix
        self._interval = interval
        self._backoff = backoff
        self._pumps: dict[str, _Pump] = {}
        self._joining = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None

    def channel(self, tenant: str) -> str:
        return f"{self._prefix}team:{tenant}"

    @property
    def tenants(self) -> int:
        """Tenants with streams open here."""
        return len(self._pumps)

    def inboxes(self, tenant: str) -> int:
        """Streams of ``tenant`` open here."""
        pump = self._pumps.get(tenant)
        return 0 if pump is None else len(pump.inboxes)

    async def announce(self, tenant: str, message_id: int) -> None:
        """Tell every front door's hub (this one at once) that ``message_id`` was stored."""
        self.poke(tenant)
        if self._redis is None:
            return
        try:
            await self._redis.publish(self.channel(tenant), str(message_id).encode())
        except Exception as exc:  # the other front doors' pumps read it within their interval
            log.warning("team chat announcement lost", tenant=tenant, error=repr(exc))

    def poke(self, tenant: str) -> None:
        pump = self._pumps.get(tenant)
        if pump is not None:
            pump.wake.set()

    async def join(self, tenant: str, agent_id: str) -> Inbox:
        """An inbox for ``agent_id``'s new messages (those after the pump's position)."""
        inbox = Inbox(tenant, agent_id)
        async with self._joining:
            pump = self._pumps.get(tenant)
            if pump is None:
                pump = _Pump(tenant, await self._store.last_id(tenant))
                self._pumps[tenant] = pump
                pump.task = asyncio.create_task(self._pump(pump), name=f"team-chat:{tenant}")
            pump.inboxes.add(inbox)
            if self._redis is not None and self._listener is None:
                self._listener = asyncio.create_task(self._listen(), name="team-chat-listener")
        return inbox

    def leave(self, inbox: Inbox) -> None:
        inbox.closed = True
        pump = self._pumps.get(inbox.tenant)
        if pump is None:
            return
        pump.inboxes.discard(inbox)
        if pump.inboxes:
            return
        del self._pumps[inbox.tenant]
        if pump.task is not None:
            pump.task.cancel()
        if not self._pumps and self._listener is not None:
            self._listener.cancel()
            self._listener = None

    async def _pump(self, pump: _Pump) -> None:
        while True:
            pump.wake.clear()
            try:
                while True:
                    found = await self._store.after(pump.tenant, pump.last, BATCH)
                    for delivery in found:
                        for inbox in list(pump.inboxes):
                            if inbox.agent_id in delivery.members:
                                inbox.offer(delivery.message)
                        pump.last = delivery.message.message_id
                    if len(found) < BATCH:
                        break
            except Exception as exc:  # the store is away: read again next time
                log.warning("team chat read failed", tenant=pump.tenant, error=repr(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await pump.wake.wait()

    async def _listen(self) -> None:
        assert self._redis is not None
        delay = self._backoff[0]
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.psubscribe(f"{self._prefix}team:*")
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None:
                        continue
                    if message["type"] == "psubscribe":
                        delay = self._backoff[0]
                        for tenant in list(self._pumps):  # missed while away: read now
                            self.poke(tenant)
                    elif message["type"] == "pmessage":
                        self.poke(self._tenant_of(message["channel"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis away: the pumps' interval reads go on
                log.warning("team chat listener failed", error=repr(exc), retry_in=delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._backoff[1])

    def _tenant_of(self, channel: Any) -> str:
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        return name.removeprefix(f"{self._prefix}team:")
