"""Prometheus metrics of a front door, in ``prometheus_client``'s default registry.

``usher serve`` exposes them on ``--http-port`` (``/metrics``). What is measured, and where:

- ``usher_command_seconds{command}``: a command's latency through ``ApiContext.submit`` (the
  dispatcher and the shard, commit included); ``metered(submit)`` wraps it.
- ``usher_commands_total{command, code}``: commands by type and outcome (``OK`` or the failure's
  canonical code; ``INTERNAL`` if ``submit`` raised).
- ``usher_offers_total{outcome}``: offers ``made``, ``accepted``, ``rejected``, ``expired`` and
  ``rescinded``, counted from committed events as they enter this front door's feeds
  (``CountingFeeds``, ``EventCounter``): each event once per front door, so every front door
  counts every event of the tenants it serves; do not sum the counter across front doors.
- ``usher_open_streams{service}``: server streams being served now, per gRPC service, counted
  by ``core.api.streams.StreamGuard`` (every ``Server`` installs it) from admission to the end
  of each stream; ``with_stream_gauge`` counts the streams of a bare ``grpc.aio`` server's
  servicer instead (never both).

- ``usher_queue_waiting{tenant, queue}`` and ``usher_queue_longest_wait_seconds{tenant,
  queue}``: conversations waiting (queued or offered) and the longest wait, read from the
  record tables every few seconds by ``QueueDepth`` (one indexed query on the event loop, not on
  the scrape thread). Every front door reports the same figures: do not sum them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Final

import asyncpg
import structlog
from prometheus_client import Counter, Gauge, Histogram

from core.api.context import Submit
from core.api.server import Servicer
from core.api.streams import OPEN_STREAMS
from core.routing import commands as c
from core.routing import events as ev
from core.runtime.feed import Backfill, Feeds
from core.runtime.shard import Outcome
from core.store.reads import queue_depths

log = structlog.get_logger(__name__)

COMMAND_SECONDS: Final = Histogram(
    "usher_command_seconds",
    "Latency of a command through the dispatcher and its shard, commit included.",
    ["command"],
    buckets=(
        0.0001,
        0.00025,
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1.0,
    ),
)
COMMANDS: Final = Counter(
    "usher_commands",
    "Commands by type and outcome code (OK or a canonical code).",
    ["command", "code"],
)
OFFERS: Final = Counter(
    "usher_offers",
    "Offers by outcome: made, accepted, rejected, expired, rescinded (from committed events).",
    ["outcome"],
)

QUEUE_WAITING: Final = Gauge(
    "usher_queue_waiting",
    "Conversations waiting (queued or offered), per queue.",
    ["tenant", "queue"],
)
QUEUE_LONGEST_WAIT: Final = Gauge(
    "usher_queue_longest_wait_seconds",
    "How long the longest-waiting conversation has waited, per queue.",
    ["tenant", "queue"],
)

OFFER_OUTCOMES: Final = ("made", "accepted", "rejected", "expired", "rescinded")


class QueueDepth:
    """Refreshes the queue gauges every ``interval`` seconds; queues that emptied read 0."""

    def __init__(self, pool: asyncpg.Pool, *, interval: float = 5.0) -> None:
        self._pool = pool
        self._interval = interval
        self._seen: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        now = await queue_depths(self._pool, timeout=self._interval)
        for key in self._seen - set(now):
            QUEUE_WAITING.labels(*key).set(0)
            QUEUE_LONGEST_WAIT.labels(*key).set(0)
        for key, (waiting, longest) in now.items():
            QUEUE_WAITING.labels(*key).set(waiting)
            QUEUE_LONGEST_WAIT.labels(*key).set(longest)
        self._seen |= set(now)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="queue-depth")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # the store is away: keep the last figures, try again
                log.warning("queue depth not refreshed", error=repr(exc))
            await asyncio.sleep(self._interval)


def metered(submit: Submit) -> Submit:
    """``submit`` with its latency and outcome recorded; same contract otherwise."""

    async def timed(command: c.Command) -> Outcome:
        kind = type(command).__name__
        started = time.perf_counter()
        code = "INTERNAL"
        try:
            outcome = await submit(command)
            code = "OK" if outcome.failure is None else outcome.failure.code
            return outcome
        finally:
            COMMAND_SECONDS.labels(kind).observe(time.perf_counter() - started)
            COMMANDS.labels(kind, code).inc()

    return timed


def offer_outcome(event: ev.Event) -> str | None:
    """Which ``usher_offers_total`` outcome an event is, if any."""
    if isinstance(event, ev.OfferMade):
        return "made"
    if isinstance(event, ev.OfferAccepted):
        return "accepted"
    if isinstance(event, ev.OfferDeclined):
        return str(event.reason.value)  # rejected, expired or rescinded
    return None


class EventCounter:
    """Counts committed events into the metrics, each event id of a tenant once.

    Events reach a front door's feeds more than once and out of order (pushed through Redis,
    again by the log tail, holes read back from the store), so ``observe`` is called on every
    path into the feeds (``Feeds.publish`` and the feeds' backfill) and keeps, per tenant, the
    id up to which everything was counted plus the ids counted above it. A tenant's count
    starts at the first id this front door sees of it; earlier history is not counted.
    """

    def __init__(self) -> None:
        self._upto: dict[str, int] = {}
        self._above: dict[str, set[int]] = {}

    def observe(self, tenant: str, first_id: int, events: Sequence[ev.Event]) -> None:
        upto = self._upto.setdefault(tenant, first_id - 1)
        above = self._above.setdefault(tenant, set())
        for offset, event in enumerate(events):
            event_id = first_id + offset
            if event_id <= upto or event_id in above:
                continue
            above.add(event_id)
            outcome = offer_outcome(event)
            if outcome is not None:
                OFFERS.labels(outcome).inc()
        while upto + 1 in above:
            upto += 1
            above.remove(upto)
        self._upto[tenant] = upto

    def backfill(self, backfill: Backfill) -> Backfill:
        """``backfill`` with the events it returns observed."""

        async def counted(tenant: str, after: int, up_to: int) -> Sequence[ev.Event]:
            events = await backfill(tenant, after, up_to)
            self.observe(tenant, after + 1, events)
            return events

        return counted


class CountingFeeds(Feeds):
    """``Feeds`` whose incoming events, on every path (publish and backfill), are counted by an
    ``EventCounter`` (``counter``) before the feeds release them."""

    def __init__(self, backfill: Backfill, *, window: int = 10_000) -> None:
        self.counter = EventCounter()
        super().__init__(self.counter.backfill(backfill), window=window)

    async def publish(self, tenant: str, first_id: int, events: Sequence[ev.Event]) -> None:
        self.counter.observe(tenant, first_id, events)
        await super().publish(tenant, first_id, events)


def with_stream_gauge(servicer: Servicer) -> Servicer:
    """``servicer`` whose server-streaming methods count themselves in ``usher_open_streams``
    (labelled with the service's short name) while they run; everything else is unchanged.
    Only for a bare ``grpc.aio`` server: a ``Server`` counts its streams itself."""
    service = servicer.name.rsplit(".", 1)[-1]
    return Servicer(servicer.name, _StreamCounting(servicer.servicer, service), servicer.add)


class _StreamCounting:
    """A proxy for a servicer object: async-generator methods are wrapped, the rest delegated."""

    def __init__(self, inner: object, service: str) -> None:
        self._inner = inner
        self._service = service

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if not inspect.isasyncgenfunction(value):
            return value
        return _counting(value, OPEN_STREAMS.labels(self._service))


def _counting(
    method: Callable[..., AsyncIterator[Any]], gauge: Any
) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(method)
    async def stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        gauge.inc()
        try:
            async for item in method(*args, **kwargs):
                yield item
        finally:
            gauge.dec()

    return stream
