"""A shard: the single owner of some tenants' routing state, durable through the store.

``submit`` runs a batch of commands on the engine and returns each one's outcome only after
its events have committed, so an acknowledged command is never lost. Batches run one at a time
(the engine is single-threaded); throughput comes from batching, not from concurrency: the front
door coalesces commands while the previous batch commits.

A tenant is loaded on its first command: the shard claims it (a new epoch fences off any older
owner) and rebuilds it from the newest snapshot and the events after it. If the store refuses
or fails an append, or anything but a ``RoutingError`` escapes the engine, the tenant's
in-memory state may be ahead of the store: the shard drops it, every command of that tenant in
the batch fails with ``UNAVAILABLE`` (nothing was stored; retry), and the next command loads it
afresh. Failures never carry internal text to callers; the cause is logged.

Messages are part of their commands and their rows are written with the events, so the shard
also decides idempotency: the engine remembers the keys of the conversations in memory, and for
the rest one read per batch (``core.store.idempotency``) finds what was committed before.

Timers run on the shard's clock: a task sleeps until the engine's next deadline, ticks, and
stores what the timers did like any command.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace

import asyncpg
import structlog

from core.routing import Engine, RoutingError, SystemClock
from core.routing import commands as c
from core.routing import events as ev
from core.routing.clock import Clock
from core.routing.effects import Effect
from core.routing.errors import AlreadyExists, Duplicate
from core.routing.router import Router
from core.routing.views import AgentView, ConversationView, agent_view, conversation_view
from core.runtime.live import TenantLive, tenant_live
from core.store import idempotency, snapshots
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
        outcomes: list[Outcome] = [Outcome()] * len(commands)
        by_tenant: dict[str, list[int]] = {}
        for i, command in enumerate(commands):
            by_tenant.setdefault(command.tenant, []).append(i)
        async with self._lock:
            for tenant, indexes in by_tenant.items():
                done = await self._run(tenant, [commands[i] for i in indexes])
                for i, outcome in zip(indexes, done, strict=True):
                    outcomes[i] = outcome
        self._wake.set()  # deadlines may have moved
        return outcomes

    async def _run(self, tenant: str, commands: Sequence[c.Command]) -> list[Outcome]:
        """One tenant's commands of a batch, in order, committed together."""
        try:
            await self._load(tenant)
            known = await self._recorded(tenant, commands)
        except StoreError as exc:
            return [_failed(exc)] * len(commands)
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
                return [_UNAVAILABLE] * len(commands)
        done = [(i, outcome) for i, outcome in enumerate(outcomes) if outcome.ok]
        for (i, _), committed in zip(done, await self._commit(tenant, done), strict=True):
            outcomes[i] = committed
        return outcomes

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

    async def _commit(self, tenant: str, done: list[_Done]) -> list[Outcome]:
        events = [e for _, outcome in done for e in outcome.events]
        if not events:
            return [outcome for _, outcome in done]
        router = self.engine.router(tenant)
        try:
            last = await self._log.append(
                tenant, self._epochs[tenant], events, project(router, events)
            )
        except Exception as exc:  # a refusal or an outage: the engine is ahead of the store
            if not isinstance(exc, StoreError):
                log.error("commit refused", shard=self.name, tenant=tenant, error=repr(exc))
            self._drop(tenant, repr(exc))
            return [_failed(exc) for _ in done]
        outcomes = []
        next_id = last - len(events) + 1
        for _, outcome in done:
            batch = outcome.events
            outcomes.append(replace(outcome, first_id=next_id if batch else 0))
            if batch and self._on_commit is not None:
                await self._on_commit(tenant, next_id, batch, outcome.effects)
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
        stored = await idempotency.highest_message_id(self._pool, tenant)
        router = self.engine.get(tenant)
        if router is not None:
            router.message_seq = max(router.message_seq, stored)
        self._epochs[tenant] = epoch
        self._last_seq[tenant] = last
        self._since_snapshot[tenant] = 0
        log.info("tenant loaded", shard=self.name, tenant=tenant, epoch=epoch, last_event=last)

    def _drop(self, tenant: str, why: str) -> None:
        self.engine.forget(tenant)
        self._epochs.pop(tenant, None)
        log.warning("tenant dropped", shard=self.name, tenant=tenant, reason=why)

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
                    timed = Outcome(tuple(events), tuple(effects.get(tenant, [])))
                    await self._commit(tenant, [(0, timed)])

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
        return tenant_live(router, now)

    def __repr__(self) -> str:
        return f"<Shard {self.name} tenants={sorted(self._epochs)}>"


_PG_ERRORS = (OSError, asyncio.TimeoutError, asyncpg.PostgresError)


_Done = tuple[int, Outcome]
"""(index in the batch, the command's outcome before commit)."""

_UNAVAILABLE = Outcome(
    failure=Failure("UNAVAILABLE", "the shard could not complete the command; nothing was stored")
)


def _failed(exc: Exception) -> Outcome:
    """A store failure: nothing was stored. Only the store's own refusals pass their text."""
    code = exc.code if isinstance(exc, StoreError) else "INTERNAL"
    if isinstance(exc, StaleEpoch) or code in ("UNAVAILABLE", "INTERNAL"):
        return _UNAVAILABLE
    return Outcome(failure=Failure(code, str(exc)))


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
