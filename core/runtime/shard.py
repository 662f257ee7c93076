"""A shard: the single owner of some tenants' routing state, durable through the store.

``submit`` runs a batch of commands on the engine and returns each one's outcome only after
its events have committed, so an acknowledged command is never lost. Batches execute one at a
time (the engine is single-threaded) but commit in a pipeline: once a batch has executed and
queued its events for the group commit, the next batch may execute while the first is written.
Commits, acknowledgements and the ``on_commit`` hook keep the execution order, tenant by tenant.

A tenant is loaded on its first command: the shard claims it (a new epoch fences off any older
owner) and rebuilds it from the newest snapshot and the events after it. If the store refuses
or fails an append, or anything but a ``RoutingError`` escapes the engine, the tenant's
in-memory state may be ahead of the store: the shard drops it, every command of that tenant in
the batch fails with ``UNAVAILABLE`` (nothing was stored; retry), and the next command loads it
afresh. Batches that executed after the failed one built on its state: the event log refuses
every later append of that epoch (``EventLog`` poisons it), so they fail too and store nothing.
Failures never carry internal text to callers; the cause is logged.

Snapshots bound the replay on load. Pickling the router costs in proportion to its size (about
24 µs per conversation, against 6 µs to replay an event), so one is taken (under the lock, where
the state is exactly the executed events) only after at least ``snapshot_every`` events and
``SNAPSHOT_EVENTS_PER_OBJECT`` times as many events as the state holds conversations and agents:
a few µs per event, and a reload replays at most that many events. It is written in the
background once those events have committed.

Messages are part of their commands and their rows are written with the events, so the shard
also decides idempotency: the engine remembers the keys of the conversations in memory, and for
the rest one read per batch (``core.store.idempotency``) finds what was committed before.

Timers run on the shard's clock: a task sleeps until the engine's next deadline, ticks, and
stores what the timers did like any command.

Bots' flows wait for their I/O as effects (``BotEffectRequested``): once the command that asked
for one has committed, the shard's ``BotEffects`` (``core.runtime.bot_effects``) performs it and
submits the answer as a command; loading a tenant issues the effects its flows still wait for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import asyncpg
import structlog

from core.reports.rollup import RollupState
from core.routing import Engine, RoutingError, SystemClock
from core.routing import commands as c
from core.routing import events as ev
from core.routing.clock import Clock
from core.routing.effects import Effect
from core.routing.errors import AlreadyExists, Duplicate
from core.routing.router import Router
from core.routing.views import AgentView, ConversationView, agent_view, conversation_view
from core.runtime.bot_effects import BotEffects
from core.runtime.live import TenantLive, tenant_live
from core.store import idempotency, snapshots
from core.store import rollups as rollup_rows
from core.store.errors import StaleEpoch, StoreError
from core.store.eventlog import EventLog
from core.store.projection import Projection, project

log = structlog.get_logger(__name__)

REPORTS_EVERY = 1.0
"""Seconds a tenant's reports' facts are held before an append writes them (reports lag by
about this much; the facts' rows are then written once a second, not with every batch)."""
REPORTS_ROWS = 5_000
"""Held fact rows that are written with the next append whatever their age."""

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
    """A command's result: its events (ids ``first_id``...) and effects, or a failure; with the
    state it left its conversation (and, for agent commands, its agent) in."""

    events: tuple[ev.Event, ...] = ()
    effects: tuple[Effect, ...] = ()
    first_id: int = 0
    failure: Failure | None = None
    conversation: ConversationView | None = None
    agent: AgentView | None = None

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
        bot_effects: bool = True,
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
        self._settled: dict[str, asyncio.Future[None]] = {}
        """Each tenant's newest staged batch, settled once acknowledged (or failed)."""
        self._rollups: dict[str, RollupState] = {}
        """Each loaded tenant's reports fold, at the same event as its router."""
        self._snapshots: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._timers: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.bot_effects = BotEffects(pool, self.submit) if bot_effects else None
        """Performs bots' effects and answers them (None: effects wait, e.g. in benchmarks)."""

    # --- commands ------------------------------------------------------------------------------

    async def submit(self, commands: Sequence[c.Command]) -> list[Outcome]:
        """Run the commands in order; each outcome is final (committed, or refused/failed)."""
        outcomes: list[Outcome] = [Outcome()] * len(commands)
        by_tenant: dict[str, list[int]] = {}
        for i, command in enumerate(commands):
            by_tenant.setdefault(command.tenant, []).append(i)
        staged: list[tuple[list[int], _Staged]] = []
        async with self._lock:
            for tenant, indexes in by_tenant.items():
                run = await self._run(tenant, [commands[i] for i in indexes])
                staged.append((indexes, run))
        self._wake.set()  # deadlines may have moved
        # Settling runs on even if this call is cancelled: later batches wait for it.
        settling = [asyncio.ensure_future(self._settle(run)) for _, run in staged]
        for (indexes, _), task in zip(staged, settling, strict=True):
            for i, outcome in zip(indexes, await asyncio.shield(task), strict=True):
                outcomes[i] = outcome
        return outcomes

    async def _run(self, tenant: str, commands: Sequence[c.Command]) -> _Staged:
        """Execute one tenant's commands of a batch, in order, and queue their events for the
        group commit (under the lock); ``_settle`` waits for the commit."""
        try:
            await self._load(tenant)
            known = await self._recorded(tenant, commands)
        except StoreError as exc:
            return _Staged.final(tenant, [_failed(exc)] * len(commands))
        outcomes: list[Outcome] = []
        for command in commands:
            try:
                refusal = _already_recorded(self.engine.get(tenant), command, known)
                if refusal is not None:
                    raise refusal
                outcomes.append(self._execute(command))
            except RoutingError as exc:
                outcomes.append(_refused(exc))
            except Exception:  # the engine may be half-way through: start again from the store
                log.exception("command failed", shard=self.name, tenant=tenant)
                self._drop(tenant, "a command failed")
                return _Staged.final(tenant, [_UNAVAILABLE] * len(commands))
        return self._stage(tenant, outcomes)

    def _execute(self, command: c.Command) -> Outcome:
        """Run one command on the engine: its events, effects and the views it leaves."""
        result = self.engine.execute(command)
        router = self.engine.router(command.tenant)
        subject = next(
            (e.conversation_id for e in result.events if hasattr(e, "conversation_id")),
            getattr(command, "conversation_id", None),
        )
        agent_id = getattr(command, "agent_id", None)
        return Outcome(
            tuple(result.events),
            tuple(result.effects),
            conversation=conversation_view(router, subject) if subject else None,
            agent=agent_view(router, agent_id) if agent_id else None,
        )

    async def _recorded(self, tenant: str, commands: Sequence[c.Command]) -> idempotency.Recorded:
        """What the store holds of these commands' keys that the engine does not remember."""
        router = self.engine.get(tenant)
        keys: list[tuple[str, str]] = []
        starts: list[str] = []
        for command in commands:
            if isinstance(command, c.StartConversation) and (
                router is None or command.conversation_id not in router.conversations
            ):
                starts.append(command.conversation_id)
            key = _message_key(router, command)
            if key is not None and (router is None or key not in router.message_keys):
                keys.append(key)
        return await idempotency.recorded(self._pool, tenant, keys, starts)

    def _stage(self, tenant: str, outcomes: list[Outcome]) -> _Staged:
        """Queue the successful outcomes' events for the group commit, after the tenant's
        previous batch; take a snapshot's state if one is due."""
        staged = _Staged(tenant, outcomes, self._epochs[tenant], self._settled.get(tenant))
        events = [e for outcome in outcomes if outcome.ok for e in outcome.events]
        if events:
            router = self.engine.router(tenant)
            projection = project(router, events)
            reports = self._rollups[tenant]
            reports.hold(reports.fold(events), time.monotonic())
            if reports.due(time.monotonic(), REPORTS_EVERY, REPORTS_ROWS):
                projection.rollups = {tenant: reports.take()}
            staged.appended = asyncio.ensure_future(
                self._log.append(tenant, staged.epoch, events, projection)
            )
            staged.snapshot = self._snapshot_due(router, len(events))
        self._settled[tenant] = staged.settled
        return staged

    async def _settle(self, staged: _Staged) -> list[Outcome]:
        """The staged outcomes once their events have committed (or failed to), in the order
        the tenant's batches executed."""
        if staged.appended is None:  # nothing to commit: answer now, settle in order
            _settle_after(staged.settled, staged.previous)
            return staged.outcomes
        try:
            try:
                last = await staged.appended
            except Exception as exc:  # a refusal or an outage: the engine is ahead of the store
                if not isinstance(exc, StoreError):
                    log.error("commit refused", tenant=staged.tenant, error=repr(exc))
                self._drop(staged.tenant, repr(exc), epoch=staged.epoch)
                return [o if not o.ok else _failed(exc) for o in staged.outcomes]
            if staged.previous is not None:
                await staged.previous  # acknowledge and publish in execution order
            return await self._committed(staged, last)
        finally:
            if not staged.settled.done():
                staged.settled.set_result(None)

    async def _committed(self, staged: _Staged, last: int) -> list[Outcome]:
        tenant = staged.tenant
        events = sum(len(o.events) for o in staged.outcomes if o.ok)
        next_id = last - events + 1
        outcomes = []
        for outcome in staged.outcomes:
            if outcome.ok and outcome.events:
                outcome = replace(outcome, first_id=next_id)
                if self._on_commit is not None:
                    await self._on_commit(tenant, next_id, outcome.events, outcome.effects)
                if self.bot_effects is not None and outcome.effects:
                    self.bot_effects.issue_all(outcome.effects)
                next_id += len(outcome.events)
            outcomes.append(outcome)
        self._last_seq[tenant] = max(self._last_seq.get(tenant, 0), last)
        if staged.snapshot is not None:
            self._save_snapshot(tenant, staged.snapshot, last, staged.epoch)
        return outcomes

    async def _load(self, tenant: str) -> None:
        """Claim and rebuild the tenant unless this shard already owns it."""
        if tenant in self._epochs:
            return
        epoch = await self._log.claim(tenant)
        self.engine.forget(tenant)
        rollups = RollupState(tenant)
        through = await rollup_rows.reports_through(self._pool, tenant)
        last = await snapshots.rebuild(self.engine, self._log, self._pool, tenant, rollups, through)
        stored = await idempotency.highest_message_id(self._pool, tenant)
        router = self.engine.get(tenant)
        if router is not None:
            router.message_seq = max(router.message_seq, stored)
        self._epochs[tenant] = epoch
        self._rollups[tenant] = rollups
        self._last_seq[tenant] = last
        self._since_snapshot[tenant] = 0
        if router is not None and self.bot_effects is not None:
            self.bot_effects.issue_all(router.pending_bot_effects())
        log.info("tenant loaded", shard=self.name, tenant=tenant, epoch=epoch, last_event=last)

    def _drop(self, tenant: str, why: str, *, epoch: int | None = None) -> None:
        """Forget the tenant (the next command reloads it), unless ``epoch`` is given and the
        tenant has been reloaded since."""
        if epoch is not None and self._epochs.get(tenant) != epoch:
            return
        self.engine.forget(tenant)
        self._epochs.pop(tenant, None)
        self._settled.pop(tenant, None)
        self._rollups.pop(tenant, None)
        log.warning("tenant dropped", shard=self.name, tenant=tenant, reason=why)

    def _snapshot_due(self, router: Router, added: int) -> bytes | None:
        """The router's state to snapshot now, if enough events have passed since the last."""
        count = self._since_snapshot.get(router.tenant, 0) + added
        size = len(router.conversations) + len(router.agents)
        if count < max(self._snapshot_every, SNAPSHOT_EVENTS_PER_OBJECT * size):
            self._since_snapshot[router.tenant] = count
            return None
        self._since_snapshot[router.tenant] = 0
        return snapshots.dump(router, self._rollups.get(router.tenant))

    def _save_snapshot(self, tenant: str, state: bytes, seq: int, epoch: int) -> None:
        async def save() -> None:
            with contextlib.suppress(StoreError, *_PG_ERRORS):  # a snapshot is an optimisation
                await snapshots.save(self._pool, tenant, state, seq, epoch)

        task = asyncio.create_task(save(), name=f"snapshot:{tenant}")
        self._snapshots.add(task)
        task.add_done_callback(self._snapshots.discard)

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
        with contextlib.suppress(StoreError, *_PG_ERRORS):  # a later load folds them again
            await self.flush_reports(every=0.0)
        if self.bot_effects is not None:
            await self.bot_effects.close()
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
            staged = [
                self._stage(tenant, [Outcome(tuple(events), tuple(effects.get(tenant, [])))])
                for tenant, events in by_tenant.items()
                if tenant in self._epochs
            ]
        for task in [asyncio.ensure_future(self._settle(run)) for run in staged]:
            await asyncio.shield(task)

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
            try:
                await self.flush_reports()
            except Exception:  # a failed flush drops its tenant, which folds them again
                log.exception("reports flush failed", shard=self.name)

    # --- reports -------------------------------------------------------------------------------

    async def flush_reports(self, every: float = REPORTS_EVERY) -> None:
        """Write the reports' facts held ``every`` seconds or more (all with 0), each tenant's
        with an append of no events (after the tenant's appends already queued), and wait for
        them. A failed write drops the tenant: its next load folds the events again."""
        flushing: list[tuple[str, int, asyncio.Future[int]]] = []
        written: asyncio.Future[int]
        async with self._lock:
            now = time.monotonic()
            for tenant, reports in list(self._rollups.items()):
                epoch = self._epochs.get(tenant)
                if epoch is None or not reports.due(now, every, REPORTS_ROWS):
                    continue
                projection = Projection(rollups={tenant: reports.take()})
                written = asyncio.ensure_future(self._log.append(tenant, epoch, [], projection))
                flushing.append((tenant, epoch, written))
        for tenant, epoch, written in flushing:
            try:
                await asyncio.shield(written)
            except Exception as exc:
                self._drop(tenant, f"reports flush failed: {exc!r}", epoch=epoch)
                if not isinstance(exc, StoreError):
                    raise

    # --- live figures --------------------------------------------------------------------------

    async def live(self, tenant: str) -> TenantLive:
        """The tenant's live figures now (``core.runtime.live``), loading it first if need be.
        A read between batches: it may show a batch's effects a moment before they commit."""
        if tenant not in self._epochs:
            async with self._lock:
                await self._load(tenant)
            self._wake.set()  # its deadlines join the timers
        now = self.engine.clock.now()
        try:
            router = self.engine.router(tenant)
        except RoutingError:  # nothing stored yet for this tenant
            return TenantLive.empty(tenant, now)
        reports = self._rollups.get(tenant)
        if reports is None:
            return tenant_live(router, now)
        return tenant_live(router, now, reports.today.as_of(now), reports.zone_name)

    def __repr__(self) -> str:
        return f"<Shard {self.name} tenants={sorted(self._epochs)}>"


SNAPSHOT_EVENTS_PER_OBJECT = 8

_PG_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError)


@dataclass(slots=True)
class _Staged:
    """One tenant's share of a batch, executed and queued for the group commit."""

    tenant: str
    outcomes: list[Outcome]
    """Before commit: ``first_id`` is not known yet."""
    epoch: int = 0
    previous: asyncio.Future[None] | None = None
    """The tenant's batch staged before this one, settled before this one is."""
    appended: asyncio.Future[int] | None = None
    """The append of the successful outcomes' events: their last sequence number."""
    snapshot: bytes | None = None
    """The router's state right after these events, to save once they commit."""
    settled: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @classmethod
    def final(cls, tenant: str, outcomes: list[Outcome]) -> _Staged:
        """Outcomes with nothing to commit (refusals and failures)."""
        return cls(tenant, outcomes)


_UNAVAILABLE = Outcome(
    failure=Failure("UNAVAILABLE", "the shard could not complete the command; nothing was stored")
)


def _failed(exc: Exception) -> Outcome:
    """A store failure: nothing was stored. Only the store's own refusals pass their text."""
    code = exc.code if isinstance(exc, StoreError) else "INTERNAL"
    if isinstance(exc, StaleEpoch) or code in ("UNAVAILABLE", "INTERNAL"):
        return _UNAVAILABLE
    return Outcome(failure=Failure(code, str(exc)))


def _settle_after(settled: asyncio.Future[None], previous: asyncio.Future[None] | None) -> None:
    """Settle ``settled`` once ``previous`` has: a batch that commits nothing must not let the
    tenant's next batch publish before the ones staged ahead of it."""

    def done(_: object = None) -> None:
        if not settled.done():
            settled.set_result(None)

    if previous is None or previous.done():
        done()
    else:
        previous.add_done_callback(done)


def _refused(exc: RoutingError) -> Outcome:
    return Outcome(failure=Failure(exc.code, exc.message, _str(exc.details)))


def _message_key(router: Router | None, command: c.Command) -> tuple[str, str] | None:
    """(channel, idempotency key) of the message a command records, if it has a key."""
    if isinstance(command, c.ReceiveMessage):
        body, channel = command.message, command.channel
    elif isinstance(command, c.StartConversation) and command.first_message is not None:
        body, channel = command.first_message, command.channel
    elif isinstance(command, c.RecordMessage) and router is not None:
        conv = router.conversations.get(command.conversation_id)
        if conv is None:
            return None
        body, channel = command.message, conv.channel
    else:
        return None
    key = body.provider_message_id
    return None if key is None else (channel, key)


def _already_recorded(
    router: Router | None, command: c.Command, known: idempotency.Recorded
) -> RoutingError | None:
    """The refusal of a command whose message or conversation the store already holds."""
    if isinstance(command, c.StartConversation) and command.conversation_id in known.conversations:
        return AlreadyExists(
            f"conversation {command.conversation_id!r} exists",
            conversation_id=command.conversation_id,
        )
    key = _message_key(router, command)
    found = None if key is None else known.messages.get(key)
    if found is None:
        return None
    return Duplicate(
        "this message was recorded before", message_id=found[0], conversation_id=found[1]
    )


def _str(details: dict[str, object]) -> dict[str, str]:
    return {k: str(v) for k, v in details.items()}
