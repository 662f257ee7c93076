"""The front door's side of the shards: commands coalesced per shard into one actor call.

A Ray round trip costs about a millisecond, so the dispatcher never makes one per command:
while a shard's batch is in flight, the next commands for it wait, then go together (up to
``max_batch``). Under load, batches grow by themselves; when idle, a command goes at once.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from core.routing import commands as c
from core.runtime.shard import Failure, Outcome


def shard_of(tenant: str, shards: int) -> int:
    """A stable tenant -> shard placement (the same in every front door)."""
    return zlib.crc32(tenant.encode()) % shards


@dataclass(slots=True)
class _Lane:
    handle: Any
    waiting: list[tuple[c.Command, asyncio.Future[Outcome]]] = field(default_factory=list)
    busy: bool = False


class Dispatcher:
    def __init__(self, handles: Sequence[Any], *, max_batch: int = 500) -> None:
        self._lanes = [_Lane(h) for h in handles]
        self._drains: set[asyncio.Task[None]] = set()
        self._max_batch = max_batch
        self.calls = 0
        """Actor calls made so far (commands / calls = the batching achieved)."""

    async def submit(self, command: c.Command) -> Outcome:
        lane = self._lanes[shard_of(command.tenant, len(self._lanes))]
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        lane.waiting.append((command, done))
        if not lane.busy:
            lane.busy = True
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
                    outcomes = await lane.handle.submit.remote([cmd for cmd, _ in batch])
                except Exception as exc:  # the actor died or is restarting: nothing acknowledged
                    failure = Failure("UNAVAILABLE", f"shard unavailable: {exc}")
                    outcomes = [Outcome(failure=failure)] * len(batch)
                for (_, done), outcome in zip(batch, outcomes, strict=True):
                    if not done.done():
                        done.set_result(outcome)
        finally:
            lane.busy = False
