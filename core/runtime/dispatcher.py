"""The front door's side of the shards: commands coalesced per shard into one actor call.

A Ray round trip costs about a millisecond, so the dispatcher never makes one per command:
while ``depth`` calls to a shard are in flight, the next commands for it wait, then go together
(up to ``max_batch``). Under load, batches grow by themselves; when idle, a command goes at
once. Two calls in flight let the shard execute one batch while the previous one commits.
Batches and their outcomes cross as msgpack bytes (``core.runtime.wire``). A call that fails
(the actor died or is restarting) answers every command of its batch UNAVAILABLE: nothing was
acknowledged, and a retry finds whatever did commit.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from core.routing import commands as c
from core.runtime import wire
from core.runtime.shard import Failure, Outcome

log = structlog.get_logger(__name__)

_UNAVAILABLE = Outcome(failure=Failure("UNAVAILABLE", "the shard is unavailable; retry"))


def shard_of(tenant: str, shards: int) -> int:
    """A stable tenant -> shard placement (the same in every front door)."""
    return zlib.crc32(tenant.encode()) % shards


@dataclass(slots=True)
class _Lane:
    handle: Any
    waiting: list[tuple[c.Command, asyncio.Future[Outcome]]] = field(default_factory=list)
    calls: int = 0
    """Calls in flight."""


class Dispatcher:
    def __init__(self, handles: Sequence[Any], *, max_batch: int = 500, depth: int = 1) -> None:
        self._lanes = [_Lane(h) for h in handles]
        self._drains: set[asyncio.Task[None]] = set()
        self._max_batch = max_batch
        self._depth = depth
        self.calls = 0
        """Actor calls made so far (commands / calls = the batching achieved)."""

    async def submit(self, command: c.Command) -> Outcome:
        lane = self._lanes[shard_of(command.tenant, len(self._lanes))]
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        lane.waiting.append((command, done))
        if lane.calls < self._depth:
            lane.calls += 1
            task = asyncio.create_task(self._drain(lane))
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
        return await done

    async def _drain(self, lane: _Lane) -> None:
        try:
            while lane.waiting:
                batch = lane.waiting[: self._max_batch]
                del lane.waiting[: self._max_batch]
                self.calls += 1
                try:
                    payload = wire.encode_commands([cmd for cmd, _ in batch])
                    outcomes = wire.decode_outcomes(
                        await lane.handle.submit_encoded.remote(payload)
                    )
                except Exception:  # the actor died or is restarting: nothing acknowledged
                    log.warning("shard call failed", exc_info=True)
                    outcomes = [_UNAVAILABLE] * len(batch)
                for (_, done), outcome in zip(batch, outcomes, strict=True):
                    if not done.done():
                        done.set_result(outcome)
        finally:
            lane.calls -= 1
