"""A shard: the single owner of some tenants' routing state, durable through the store.

``submit`` runs a batch of commands on the engine and returns each one's outcome only after
its events have committed, so an acknowledged command is never lost. Batches run one at a time
(the engine is single-threaded); throughput comes from batching, not from concurrency: the front
door coalesces commands while the previous batch commits.

A tenant is loaded on its first command: the shard claims it (a new epoch fences off any older
owner) and rebuilds it from the newest snapshot and the events after it. If the store refuses
or fails an append, the tenant's in-memory state is ahead of the store: the shard drops it, the
commands of that batch fail with ``UNAVAILABLE``, and the next command loads it afresh.

Timers run on the shard's clock: a task sleeps until the engine's next deadline, ticks, and
stores what the timers did like any command.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
import structlog

from core.routing import Engine, RoutingError, SystemClock
from core.routing import commands as c
from core.routing import events as ev
from core.routing.clock import Clock
from core.routing.effects import Effect
from core.store import snapshots
from core.store.errors import StaleEpoch, StoreError
from core.store.eventlog import EventLog
from core.store.projection import project

log = structlog.get_logger(__name__)

Committed = Callable[[str, int, Sequence[ev.Event], Sequence[Effect]], Awaitable[None]]
"""Called with (tenant, first event id, events, effects) after each commit, in order."""


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a command was refused: a canonical gRPC code, a message and details."""

    code: str
    message: str
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """A command's result: its events (ids ``first_id``...) and effects, or a failure."""

    events: tuple[ev.Event, ...] = ()
    effects: tuple[Effect, ...] = ()
    first_id: int = 0
    failure: Failure | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


class Shard:
    def __init__(
        self,
        name: str,
        pool: asyncpg.Pool,
        *,
        clock: Clock | None = None,
        on_commit: Committed | None = None,
        snapshot_every: int = 10_000,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        self.name = name
        self.engine = Engine(clock or SystemClock())
        self._pool = pool
        self._log = EventLog(pool)
        self._on_commit = on_commit
        self._owns = owns
        """Tenants to load when the timers start, so that deadlines which passed while no shard
        ran fire without waiting for a command (None: load tenants on demand only)."""
        self._snapshot_every = snapshot_every
        self._epochs: dict[str, int] = {}
        self._last_seq: dict[str, int] = {}
        self._since_snapshot: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._timers: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # --- commands ------------------------------------------------------------------------------

    async def submit(self, commands: Sequence[c.Command]) -> list[Outcome]:
        """Run the commands in order; each outcome is final (committed, or refused/failed)."""
        async with self._lock:
            outcomes: list[Outcome | None] = [None] * len(commands)
            pending: dict[str, list[tuple[int, list[ev.Event], list[Effect]]]] = {}
            for i, command in enumerate(commands):
                tenant = command.tenant
                try:
                    await self._load(tenant)
                except StoreError as exc:
                    outcomes[i] = _failed(exc)
                    continue
                try:
                    result = self.engine.execute(command)
                except RoutingError as exc:
                    outcomes[i] = Outcome(failure=Failure(exc.code, exc.message, _str(exc.details)))
                    continue
                pending.setdefault(tenant, []).append((i, result.events, result.effects))
            for tenant, results in pending.items():
                for i, outcome in zip(
                    (i for i, _, _ in results), await self._commit(tenant, results), strict=True
                ):
                    outcomes[i] = outcome
        self._wake.set()  # deadlines may have moved
        return [o if o is not None else Outcome() for o in outcomes]

    async def _commit(
        self, tenant: str, results: list[tuple[int, list[ev.Event], list[Effect]]]
    ) -> list[Outcome]:
        events = [e for _, batch, _ in results for e in batch]
        if not events:
            return [Outcome(effects=tuple(effects)) for _, _, effects in results]
        router = self.engine.router(tenant)
        try:
            last = await self._log.append(
                tenant, self._epochs[tenant], events, project(router, events)
            )
        except StoreError as exc:
            self._drop(tenant, exc)
            return [_failed(exc) for _ in results]
        outcomes = []
        next_id = last - len(events) + 1
        for _, batch, effects in results:
            outcomes.append(Outcome(tuple(batch), tuple(effects), next_id if batch else 0))
            if batch and self._on_commit is not None:
                await self._on_commit(tenant, next_id, batch, effects)
            next_id += len(batch)
        self._last_seq[tenant] = last
        await self._maybe_snapshot(tenant, len(events))
        return outcomes

    async def _load(self, tenant: str) -> None:
        """Claim and rebuild the tenant unless this shard already owns it."""
        if tenant in self._epochs:
            return
        epoch = await self._log.claim(tenant)
        self.engine.forget(tenant)
        last = await snapshots.rebuild(self.engine, self._log, self._pool, tenant)
        self._epochs[tenant] = epoch
        self._last_seq[tenant] = last
        self._since_snapshot[tenant] = 0
        log.info("tenant loaded", shard=self.name, tenant=tenant, epoch=epoch, last_event=last)

    def _drop(self, tenant: str, why: Exception) -> None:
        self.engine.forget(tenant)
        self._epochs.pop(tenant, None)
        log.warning("tenant dropped", shard=self.name, tenant=tenant, reason=str(why))

    async def _maybe_snapshot(self, tenant: str, added: int) -> None:
        self._since_snapshot[tenant] = self._since_snapshot.get(tenant, 0) + added
        if self._since_snapshot[tenant] < self._snapshot_every:
            return
        self._since_snapshot[tenant] = 0
        with contextlib.suppress(StoreError, *_PG_ERRORS):  # a snapshot is an optimisation
            await snapshots.save(
                self._pool,
                self.engine.router(tenant),
                self._last_seq[tenant],
                self._epochs[tenant],
            )

    # --- timers --------------------------------------------------------------------------------

    def start(self) -> None:
        """Run the timers until ``stop``."""
        if self._timers is None:
            self._timers = asyncio.create_task(self._run_timers(), name=f"timers:{self.name}")

    async def stop(self) -> None:
        if self._timers is not None:
            self._timers.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timers
            self._timers = None
        await self._log.close()

    async def tick(self) -> None:
        """Fire the due timers of every loaded tenant and store what they did."""
        async with self._lock:
            result = self.engine.tick()
            by_tenant: dict[str, list[ev.Event]] = {}
            for event in result.events:
                by_tenant.setdefault(event.tenant, []).append(event)
            effects: dict[str, list[Effect]] = {}
            for effect in result.effects:
                effects.setdefault(effect.tenant, []).append(effect)
            for tenant, events in by_tenant.items():
                if tenant in self._epochs:
                    await self._commit(tenant, [(0, events, effects.get(tenant, []))])

    async def warm_up(self) -> int:
        """Load every stored tenant this shard owns; how many were loaded."""
        if self._owns is None:
            return 0
        rows = await self._pool.fetch("SELECT tenant_id FROM tenants WHERE last_seq > 0")
        loaded = 0
        for row in rows:
            tenant = row["tenant_id"]
            if self._owns(tenant):
                async with self._lock:
                    try:
                        await self._load(tenant)
                        loaded += 1
                    except StoreError as exc:
                        log.warning("tenant not loaded", tenant=tenant, reason=str(exc))
        self._wake.set()
        return loaded

    async def _run_timers(self) -> None:
        clock = self.engine.clock
        with contextlib.suppress(StoreError, *_PG_ERRORS):
            await self.warm_up()
        while True:
            deadline = self.engine.next_deadline()
            delay = 1.0 if deadline is None else max(0.0, min(1.0, deadline - clock.now()))
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            if deadline is not None and deadline <= clock.now():
                try:
                    await self.tick()
                except Exception:  # keep the timers alive; the failure is logged
                    log.exception("timer tick failed", shard=self.name)

    def __repr__(self) -> str:
        return f"<Shard {self.name} tenants={sorted(self._epochs)}>"


_PG_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError)


def _failed(exc: Exception) -> Outcome:
    code = exc.code if isinstance(exc, StoreError) else "UNAVAILABLE"
    if isinstance(exc, StaleEpoch):
        code = "UNAVAILABLE"  # another incarnation took over; the caller retries there
    return Outcome(failure=Failure(code, str(exc)))


def _str(details: dict[str, object]) -> dict[str, str]:
    return {k: str(v) for k, v in details.items()}
