"""The ``RouterShard`` Ray actor: a ``Shard`` in its own process, named and restarted by Ray.

Shards are few and long-lived (an actor is a process): named ``shard-N`` in the ``usher``
namespace, detached, restarted for ever. A restarted actor starts empty; each tenant is claimed
and rebuilt from the store on its first command, so nothing acknowledged is lost and the old
incarnation, if still alive somewhere, is fenced off by the new epoch.

Health and control calls run in their own concurrency group, so they never queue behind
dispatch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import ray

from core.routing import commands as c
from core.runtime.shard import Outcome, Shard

NAMESPACE = "usher"


@ray.remote(  # type: ignore[call-overload]  # Ray's stubs omit concurrency_groups
    max_restarts=-1,
    max_task_retries=0,
    concurrency_groups={"control": 2, "dispatch": 1},
)
class RouterShard:
    def __init__(self, name: str, database_url: str) -> None:
        self._name = name
        self._database_url = database_url
        self._shard: Shard | None = None

    async def _ready(self) -> Shard:
        if self._shard is None:
            pool = await asyncpg.create_pool(self._database_url, min_size=1, max_size=4)
            self._shard = Shard(self._name, pool)
            self._shard.start()
        return self._shard

    @ray.method(concurrency_group="dispatch")
    async def submit(self, commands: Sequence[c.Command]) -> list[Outcome]:
        """Run a batch; every outcome is final (committed, or refused)."""
        shard = await self._ready()
        return await shard.submit(commands)

    @ray.method(concurrency_group="control")
    async def health(self) -> dict[str, Any]:
        return {"name": self._name, "started": self._shard is not None}


def shard_name(index: int) -> str:
    return f"shard-{index}"


def spawn(index: int, database_url: str) -> Any:
    """The named shard actor, created if it does not exist yet."""
    return RouterShard.options(  # type: ignore[attr-defined]
        name=shard_name(index),
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
    ).remote(shard_name(index), database_url)
