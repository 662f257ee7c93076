"""The ``RouterShard`` Ray actor: a ``Shard`` in its own process, named and restarted by Ray.

Shards are few and long-lived (an actor is a process): named ``shard-N`` in the ``usher``
namespace, detached, restarted for ever. A restarted actor starts empty; each tenant is claimed
and rebuilt from the store on its first command, so nothing acknowledged is lost and the old
incarnation, if still alive somewhere, is fenced off by the new epoch.

Health and control calls run in their own concurrency group, so they never queue behind
dispatch. Ray runs each concurrency group on its own thread and event loop, so the shard (its
pool, its timers, its state) lives on the dispatch group's loop only: ``health`` starts it by
calling the actor's own ``start`` (a dispatch method), and reads nothing but plain attributes.

With a ``redis_url``, each commit is also pushed to the front doors through Redis pub/sub
(``CommitPublisher``): one channel per tenant, ``{prefix}events:{tenant}``, carrying a
``CommitMessage`` (msgpack: the first event id and the encoded events). Publishing happens off
the commit path, in commit order, and at most once: a message lost to a full queue or a Redis
outage is a hole the front door's feed fills from the store (``core.api.tail``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Final

import msgspec
import ray
import redis.asyncio as aioredis
import structlog

from core.gctune import tune_for_service
from core.routing import commands as c
from core.routing import events as ev
from core.routing.effects import Effect
from core.runtime import wire
from core.runtime.dispatcher import shard_of
from core.runtime.live import TenantLive
from core.runtime.shard import Outcome, Shard
from core.store import codec
from core.store.connect import create_pool
from core.store.presence import FanOut

log = structlog.get_logger(__name__)

NAMESPACE = "usher"
DEFAULT_PREFIX: Final = "usher:"


# --- commits over Redis ------------------------------------------------------------------------


class CommitMessage(msgspec.Struct, frozen=True, array_like=True):
    """One or more consecutive commits of a tenant: events ``first_id``... in order, each as
    ``codec.encode`` gives it (type name, JSON text)."""

    first_id: int
    events: list[tuple[str, str]]


_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final = msgspec.msgpack.Decoder(CommitMessage)


def encode_commit(first_id: int, events: Sequence[ev.Event]) -> bytes:
    return _encoder.encode(CommitMessage(first_id, [codec.encode(e) for e in events]))


def decode_commit(payload: bytes) -> tuple[int, list[ev.Event]]:
    """(first id, events) of a ``CommitMessage``; ``msgspec.DecodeError`` or ``ValueError``
    if it is not one."""
    message = _decoder.decode(payload)
    return message.first_id, [codec.decode(name, text) for name, text in message.events]


def channel_pattern(prefix: str) -> str:
    """The Redis pattern matching every tenant's channel under ``prefix`` (glob-escaped)."""
    escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in prefix)
    return f"{escaped}events:*"


def tenant_of(channel: str, prefix: str) -> str | None:
    """The tenant whose channel this is, or None if it is not under ``prefix``."""
    head = f"{prefix}events:"
    return channel[len(head) :] if channel.startswith(head) and len(channel) > len(head) else None


class CommitPublisher:
    """Pushes commits to Redis from a background task, so the commit path never waits on Redis.

    ``committed`` (a ``Shard`` ``on_commit`` hook) only queues; the task sends everything queued
    in one pipeline, consecutive commits of a tenant merged into one message. A full queue
    (``limit`` commits) or a failed send drops messages: subscribers fill holes from the store.
    """

    def __init__(self, redis: aioredis.Redis, *, prefix: str = DEFAULT_PREFIX, limit: int = 10_000):
        self._fan_out = FanOut(redis, prefix=prefix)
        self._redis = redis
        self._queue: asyncio.Queue[tuple[str, int, list[ev.Event]]] = asyncio.Queue(limit)
        self._task: asyncio.Task[None] | None = None
        self.dropped = 0
        """Commits not published (queue full or Redis failed)."""

    async def committed(
        self, tenant: str, first_id: int, events: Sequence[ev.Event], effects: Sequence[Effect]
    ) -> None:
        try:
            self._queue.put_nowait((tenant, first_id, list(events)))
        except asyncio.QueueFull:
            self.dropped += 1

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="commit-publisher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            merged: list[tuple[str, int, list[ev.Event]]] = []
            for tenant, first_id, events in batch:
                last = merged[-1] if merged else None
                if last is not None and last[0] == tenant and last[1] + len(last[2]) == first_id:
                    last[2].extend(events)
                else:
                    merged.append((tenant, first_id, events))
            try:
                async with asyncio.timeout(2.0):
                    pipe = self._redis.pipeline(transaction=False)
                    for tenant, first_id, events in merged:
                        pipe.publish(self._fan_out.channel(tenant), encode_commit(first_id, events))
                    await pipe.execute()
            except Exception as exc:  # Redis is away: at most once; the front doors backfill
                self.dropped += len(batch)
                log.warning("commit publish failed", error=repr(exc), commits=len(batch))


# --- the actor ---------------------------------------------------------------------------------


@ray.remote(  # type: ignore[call-overload]  # Ray's stubs omit concurrency_groups
    max_restarts=-1,
    max_task_retries=0,
    concurrency_groups={"control": 2, "dispatch": 1},
)
class RouterShard:
    def __init__(
        self,
        name: str,
        database_url: str,
        redis_url: str | None = None,
        prefix: str = DEFAULT_PREFIX,
        index: int = 0,
        shards: int = 1,
    ) -> None:
        self._name = name
        self._index = index
        self._shards = shards
        self._database_url = database_url
        self._redis_url = redis_url
        self._prefix = prefix
        self._shard: Shard | None = None
        self._starting: asyncio.Task[Shard] | None = None
        self._publisher: CommitPublisher | None = None

    async def _ready(self) -> Shard:
        """The started shard (started once; on the dispatch group's loop only)."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        return await asyncio.shield(self._starting)

    async def _start(self) -> Shard:
        if self._shard is None:
            pool = await create_pool(self._database_url, max_size=4)
            if self._redis_url:
                self._publisher = CommitPublisher(
                    aioredis.Redis.from_url(self._redis_url), prefix=self._prefix
                )
                self._publisher.start()
            on_commit = self._publisher.committed if self._publisher is not None else None
            self._shard = Shard(
                self._name,
                pool,
                on_commit=on_commit,
                owns=lambda tenant: shard_of(tenant, self._shards) == self._index,
            )
            self._shard.start()
            tune_for_service()
        return self._shard

    @ray.method(concurrency_group="dispatch")
    async def submit(self, commands: Sequence[c.Command]) -> list[Outcome]:
        """Run a batch; every outcome is final (committed, or refused)."""
        shard = await self._ready()
        return await shard.submit(commands)

    @ray.method(concurrency_group="dispatch")
    async def live(self, tenant: str) -> TenantLive:
        """The tenant's live figures now (on the dispatch loop, where the engine lives)."""
        shard = await self._ready()
        return await shard.live(tenant)

    @ray.method(concurrency_group="dispatch", enable_task_events=False)
    async def submit_encoded(self, payload: bytes) -> bytes:
        """``submit`` with the batch and its outcomes as msgpack bytes (``core.runtime.wire``):
        what the front door's ``Dispatcher`` calls."""
        shard = await self._ready()
        return wire.encode_outcomes(await shard.submit(wire.decode_commands(payload)))

    @ray.method(concurrency_group="dispatch")
    async def start(self) -> None:
        """Start the shard on the dispatch group's loop (``health`` calls it)."""
        await self._ready()

    @ray.method(concurrency_group="control")
    async def health(self) -> dict[str, Any]:
        """Also starts the shard (a restarted actor starts empty): its timers and the warm-up
        that loads its tenants, so overdue deadlines fire without waiting for a command."""
        if self._shard is None:
            await ray.get_runtime_context().current_actor.start.remote()
        return {
            "name": self._name,
            "started": self._shard is not None,
            "publishing": self._publisher is not None,
            "dropped": self._publisher.dropped if self._publisher is not None else 0,
        }


def shard_name(index: int) -> str:
    return f"shard-{index}"


def spawn(
    index: int,
    database_url: str,
    redis_url: str | None = None,
    *,
    shards: int = 1,
    prefix: str = DEFAULT_PREFIX,
) -> Any:
    """The named shard actor, created if it does not exist yet. With ``redis_url`` it publishes
    its commits under ``prefix`` (see the module docstring). An existing actor keeps the
    arguments it was created with."""
    return RouterShard.options(  # type: ignore[attr-defined]
        name=shard_name(index),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
    ).remote(shard_name(index), database_url, redis_url, prefix, index, shards)
