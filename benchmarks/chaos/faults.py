"""The fault schedule and its injection.

Faults run one phase after another, ``gap_s`` apart, so each one's recovery is its own: SIGKILL
of a shard actor's process every ``shard_interval_s`` (Ray restarts it; its tenants are rebuilt
from the store on their next command), SIGKILL of a front door then a restart on the same port,
PostgreSQL paused (SIGSTOP of all its processes, or its proxy stalled) for ``postgres_stop_s``,
Redis stopped (or its proxy cut) for ``redis_stop_s``.

A fault is *lifted* when the injector is done with it: at once for a shard kill (Ray's restart
is part of the recovery), when the restarted door printed its banner, at SIGCONT, when Redis
listens again. Its recovery is measured from then by the probes (``load.Probes``).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass

from benchmarks.chaos.cluster import Cluster, Progress

SHARD_KILL = "shard_kill"
DOOR_KILL = "door_kill"
POSTGRES_STOP = "postgres_stop"
REDIS_STOP = "redis_stop"


@dataclass(frozen=True, slots=True)
class Schedule:
    warmup_s: float = 5.0
    shard_kills: int = 6
    shard_interval_s: float = 5.0
    door_kills: int = 1
    postgres_stops: int = 1
    postgres_stop_s: float = 10.0
    redis_stops: int = 1
    redis_stop_s: float = 30.0
    gap_s: float = 10.0
    """Seconds after a phase's last fault is lifted before the next phase (and the end)."""
    kills_throughout: bool = False
    """Shard kills every ``shard_interval_s`` over the whole run, during the other faults,
    instead of a phase of ``shard_kills`` of their own."""


@dataclass(frozen=True, slots=True)
class Planned:
    kind: str
    at_s: float
    """Seconds after the load started."""
    hold_s: float
    """How long the fault lasts before it is lifted (0: a kill)."""


def plan(schedule: Schedule) -> tuple[list[Planned], float]:
    """The faults in order and the load's length in seconds (the last phase's gap included)."""
    planned: list[Planned] = []
    t = schedule.warmup_s
    kills = 0 if schedule.kills_throughout else schedule.shard_kills
    phases = [
        (SHARD_KILL, kills, 0.0, schedule.shard_interval_s),
        (DOOR_KILL, schedule.door_kills, 0.0, schedule.gap_s),
        (POSTGRES_STOP, schedule.postgres_stops, schedule.postgres_stop_s, schedule.gap_s),
        (REDIS_STOP, schedule.redis_stops, schedule.redis_stop_s, schedule.gap_s),
    ]
    for kind, count, hold, interval in phases:
        if count <= 0:
            continue
        for n in range(count):
            planned.append(Planned(kind, round(t, 3), hold))
            t += hold + (interval if n < count - 1 else 0.0)
        t += schedule.gap_s
    end = max(t, schedule.warmup_s + schedule.gap_s)
    if schedule.kills_throughout:
        at = schedule.warmup_s
        while at < end - schedule.gap_s / 2:
            planned.append(Planned(SHARD_KILL, round(at, 3), 0.0))
            at += schedule.shard_interval_s
        planned.sort(key=lambda p: p.at_s)
    return planned, end


@dataclass(frozen=True, slots=True)
class Injected:
    """A fault as it happened (``time.monotonic`` seconds)."""

    kind: str
    target: str
    started: float
    lifted: float


async def inject(
    cluster: Cluster, planned: list[Planned], t0: float, say: Progress
) -> list[Injected]:
    """Run the schedule from ``t0`` (monotonic); each fault as it happened, in order. Shard
    kills run on their own clock, so they keep time while a longer fault is held."""
    kills = [f for f in planned if f.kind == SHARD_KILL]
    others = [f for f in planned if f.kind != SHARD_KILL]
    both = await asyncio.gather(
        _in_turn(cluster, kills, t0, say), _in_turn(cluster, others, t0, say)
    )
    return sorted([*both[0], *both[1]], key=lambda f: f.started)


async def _in_turn(
    cluster: Cluster, planned: list[Planned], t0: float, say: Progress
) -> list[Injected]:
    done: list[Injected] = []
    for n, fault in enumerate(planned):
        await asyncio.sleep(max(0.0, t0 + fault.at_s - time.monotonic()))
        say(f"{fault.at_s:g} s: {fault.kind}")
        started = time.monotonic()
        if fault.kind == SHARD_KILL:
            target = _kill_a_shard(cluster, n)
        elif fault.kind == DOOR_KILL:
            door = cluster.doors[n % len(cluster.doors)]
            target = f"door {door.target}"
            await door.kill()
            await door.start()
        elif fault.kind == POSTGRES_STOP:
            target = "postgresql"
            await cluster.stores.pause_postgres()
            try:
                await asyncio.sleep(fault.hold_s)
            finally:
                await cluster.stores.resume_postgres()
        elif fault.kind == REDIS_STOP:
            target = "redis"
            await cluster.stores.stop_redis()
            try:
                await asyncio.sleep(fault.hold_s)
            finally:
                await cluster.stores.start_redis()
        else:
            raise ValueError(f"unknown fault {fault.kind}")
        done.append(Injected(fault.kind, target, started, time.monotonic()))
    return done


def _kill_a_shard(cluster: Cluster, n: int) -> str:
    pids = cluster.shard_pids()
    if not pids:
        return "no shard process found"
    pid = pids[n % len(pids)]
    os.kill(pid, signal.SIGKILL)
    return f"shard pid {pid}"
