"""Supervisor dashboards fed from the shards' live state: one poller per tenant per process.

Every open ``StreamDashboard`` of a tenant subscribes to that tenant's ``Poller``, which asks the
shard for the tenant's live figures (``ApiContext.live``: one call, in process or to the Ray
actor) at the shortest interval its subscribers asked for, and hands every result to all of
them. A new subscriber makes it poll at once, so a stream's first snapshot is fresh. When the
last subscriber leaves, the poller stops. A failed or stalled poll ends every stream of the
tenant with its code (UNAVAILABLE for a stall); snapshots are complete, so clients just reopen.

Each stream sends its first snapshot, then a snapshot whenever its (filtered) figures differ
from the last one it sent, at most once per its own interval.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Final

from google.protobuf import duration_pb2
from usher.v1 import supervisor_service_pb2

from core.api import convert as cv
from core.reports.today import ServiceLevel
from core.routing.errors import NotFound
from core.routing.model import AgentStatus
from core.runtime.live import QueueLive, TenantLive
from core.runtime.shard import Failure

Live = Callable[[str], Awaitable[TenantLive]]

DEFAULT_INTERVAL: Final = 1.0
MIN_INTERVAL: Final = 0.2
POLL_TIMEOUT: Final = 10.0
"""A poll that takes longer than this ends the tenant's streams with UNAVAILABLE."""


class Poller:
    """One tenant's live figures, polled for all of its dashboard streams."""

    def __init__(self, tenant: str, live: Live, done: Callable[[Poller], None]) -> None:
        self.tenant = tenant
        self._live = live
        self._done = done
        self._intervals: dict[int, float] = {}
        self._next_key = 0
        self.latest: TenantLive | None = None
        self.generation = 0
        """Polls completed; a subscriber waits for one newer than the last it saw."""
        self._error: BaseException | None = None
        self._changed = asyncio.Event()
        self._hurry = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def subscribers(self) -> int:
        return len(self._intervals)

    def join(self, interval: float) -> int:
        """Subscribe with an interval; the poller polls at once. Returns the subscriber's key."""
        self._next_key += 1
        self._intervals[self._next_key] = interval
        self._hurry.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"dashboard:{self.tenant}")
        return self._next_key

    def leave(self, key: int) -> None:
        self._intervals.pop(key, None)
        if not self._intervals:
            self._stop()

    async def after(self, generation: int) -> tuple[int, TenantLive]:
        """The first poll result newer than ``generation``; the poller's failure if it failed."""
        while True:
            if self._error is not None:
                raise self._error
            if self.generation > generation and self.latest is not None:
                return self.generation, self.latest
            await self._changed.wait()

    def _publish(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _stop(self) -> None:
        self._done(self)
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        while self._intervals:
            try:
                async with asyncio.timeout(POLL_TIMEOUT):
                    latest = await self._live(self.tenant)
            except TimeoutError:
                message = "the tenant's shard did not answer in time"
                self._error = cv.Refused(Failure("UNAVAILABLE", message))
            except Exception as exc:  # every stream of the tenant ends with it
                self._error = exc
            if self._error is not None:
                self._done(self)
                self._task = None
                self._publish()
                return
            self._hurry.clear()  # a subscriber that joined during the poll takes this result
            self.latest = latest
            self.generation += 1
            self._publish()
            period = min(self._intervals.values(), default=DEFAULT_INTERVAL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(period):
                    await self._hurry.wait()


class Dashboards:
    """The pollers of one front door, by tenant."""

    def __init__(self, live: Live | None) -> None:
        self._live = live
        self._pollers: dict[str, Poller] = {}

    @property
    def pollers(self) -> int:
        return len(self._pollers)

    def _forget(self, poller: Poller) -> None:
        if self._pollers.get(poller.tenant) is poller:
            del self._pollers[poller.tenant]

    @contextlib.asynccontextmanager
    async def subscription(self, tenant: str, interval: float) -> AsyncIterator[Poller]:
        if self._live is None:
            message = "this front door has no live figures (ApiContext.live)"
            raise cv.Refused(Failure("UNIMPLEMENTED", message))
        poller = self._pollers.get(tenant)
        if poller is None:
            poller = self._pollers[tenant] = Poller(tenant, self._live, self._forget)
        key = poller.join(interval)
        try:
            yield poller
        finally:
            poller.leave(key)

    async def stream(
        self, tenant: str, queues: Sequence[str], interval: float
    ) -> AsyncIterator[supervisor_service_pb2.DashboardSnapshot]:
        """The first snapshot, then each one that differs from the last sent, at most every
        ``interval`` seconds. ``NotFound`` if a queue in ``queues`` does not exist (yet)."""
        loop = asyncio.get_running_loop()
        async with self.subscription(tenant, interval) as poller:
            seen, live = await poller.after(poller.generation)
            missing = sorted(set(queues) - {q.queue_id for q in live.queues})
            if missing:
                raise NotFound(f"queue {missing[0]!r} not found", queue=missing[0])
            last = snapshot(live, queues)
            sent_at = loop.time()
            yield last
            while True:
                delay = sent_at + interval - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                seen, live = await poller.after(seen)
                current = snapshot(live, queues)
                if same_figures(current, last):
                    continue
                last, sent_at = current, loop.time()
                yield current


def interval_of(request: supervisor_service_pb2.StreamDashboardRequest) -> float:
    """The request's ``min_interval`` in seconds: 1 s when unset, at least 200 ms."""
    if not request.HasField("min_interval"):
        return DEFAULT_INTERVAL
    d = request.min_interval
    return max(MIN_INTERVAL, d.seconds + d.nanos / 1e9)


def _duration(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(round(seconds * 1e9))
    return out


def snapshot(
    live: TenantLive, queues: Sequence[str] = ()
) -> supervisor_service_pb2.DashboardSnapshot:
    """The dashboard snapshot of ``live``: all queues, or only ``queues``; all agents; and
    their totals (``totals``)."""
    wanted = set(queues)
    out = supervisor_service_pb2.DashboardSnapshot(time=cv.timestamp(live.at))
    shown = [q for q in live.queues if not wanted or q.queue_id in wanted]
    for q in shown:
        out.queues.append(
            supervisor_service_pb2.QueueSummary(
                queue=cv.queue_name(q.queue_id),
                waiting=q.waiting,
                offered=q.offered,
                longest_wait=_duration(q.longest_wait),
                open=q.open,
                answered_today=q.today.answered,
                answered_within_threshold_today=q.today.answered_in_sl,
                abandoned_today=q.today.abandoned,
                service_level_today=q.today.value,
            )
        )
    for a in live.agents:
        out.agents.append(
            supervisor_service_pb2.AgentSummary(
                agent=cv.agent_name(a.agent_id),
                status=cv.status_to_proto(a.status),
                custom_status=a.custom_status or "",
                load=a.load,
                capacity=a.capacity,
                conversations=[cv.conversation_name(x) for x in a.conversations],
                offers=[cv.offer_name(x) for x in a.offers],
            )
        )
    out.totals.CopyFrom(totals(live, shown))
    return out


def totals(live: TenantLive, shown: Sequence[QueueLive]) -> supervisor_service_pb2.DashboardTotals:
    """The shown queues' figures added up, and every agent by status."""
    today = sum((q.today for q in shown), ServiceLevel())
    statuses = Counter((a.status, a.custom_status or "") for a in live.agents)
    online = [a for a in live.agents if a.status is AgentStatus.ONLINE]
    return supervisor_service_pb2.DashboardTotals(
        waiting=sum(q.waiting for q in shown),
        offered=sum(q.offered for q in shown),
        longest_wait=_duration(max((q.longest_wait for q in shown), default=0.0)),
        answered_today=today.answered,
        answered_within_threshold_today=today.answered_in_sl,
        abandoned_today=today.abandoned,
        service_level_today=today.value,
        time_zone=live.time_zone,
        agents_by_status=[
            supervisor_service_pb2.AgentStatusCount(
                status=cv.status_to_proto(status), custom_status=custom, agents=n
            )
            for (status, custom), n in sorted(
                statuses.items(), key=lambda x: (x[0][0].value, x[0][1])
            )
        ],
        load=sum(a.load for a in online),
        capacity=sum(a.capacity for a in online),
    )


def same_figures(
    a: supervisor_service_pb2.DashboardSnapshot, b: supervisor_service_pb2.DashboardSnapshot
) -> bool:
    """Equal but for the time."""
    return a.queues == b.queues and a.agents == b.agents and a.totals == b.totals
