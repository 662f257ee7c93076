"""Open-loop load: arrivals at a target rate, whether or not earlier ones have finished.

A closed loop (each client waits for its answer before the next request) slows down with the
server and so hides its latency ("coordinated omission"). Here arrivals follow a Poisson process
of the target rate, fixed in advance from the seed: arrival ``i`` has an intended time, is
started then (or as soon as the event loop can, if it is behind), and every latency the caller
records is measured from that intended time, so a stalled server or load generator shows as
latency, not as a lower rate. ``max_outstanding`` bounds the arrivals in progress; one beyond
it is shed (counted, not started), so an overload cannot exhaust memory.

``run_step`` runs one step (one rate for a while, then a bounded drain); ``ramp_rates`` gives the
geometric rates of a ``--ramp``; ``peak`` picks the best step that kept up. ``baseline`` measures
a no-op ``grpc.aio`` server (``benchmarks.noop``) with the same harness: the physical limit of
one unary round trip on this machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

KEPT_UP = 0.95
"""A step kept up if it completed at least this share of what arrived in its window (Poisson
arrivals: what arrived, not the offered rate, which they miss by a few % either way)."""
DRAIN_SECONDS = 5.0
"""How long a step waits, after its last arrival, for the arrivals still in progress."""

Fire = Callable[[int, float], Awaitable[None]]
"""Start arrival ``i`` intended at ``perf_counter()`` time ``t``; returns when it is done."""


def quantile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of an ascending sequence (0.0 if empty)."""
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True, slots=True)
class Percentiles:
    """Latency percentiles in ms (nearest rank), and how many samples they come from."""

    p50: float
    p99: float
    p999: float
    samples: int

    @staticmethod
    def of(ordered_ms: Sequence[float]) -> Percentiles:
        return Percentiles(
            p50=round(quantile(ordered_ms, 0.50), 3),
            p99=round(quantile(ordered_ms, 0.99), 3),
            p999=round(quantile(ordered_ms, 0.999), 3),
            samples=len(ordered_ms),
        )


@dataclass(slots=True)
class Window:
    """The measured window of a step, and what happened in it."""

    start: float
    end: float
    arrivals: int = 0
    shed: int = 0
    completed: int = 0
    """Completions (as the caller defines them) whose time fell inside the window."""
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    lag_ms: list[float] = field(default_factory=list)
    """How late each arrival started against its intended time."""

    def inside(self, t: float) -> bool:
        return self.start <= t < self.end

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


async def run_step(
    rate: float,
    seconds: float,
    fire: Fire,
    window: Window,
    *,
    seed: int = 1,
    max_outstanding: int = 10_000,
    drain_seconds: float = DRAIN_SECONDS,
) -> int:
    """Open-loop arrivals at ``rate`` a second from ``window.start`` until ``window.end``, then
    wait up to ``drain_seconds`` for those in progress; how many were still running then (they
    are cancelled). ``fire`` records its own latencies and completions in ``window``; an
    exception it raises is counted as an error of its type."""
    if rate <= 0 or seconds <= 0:
        raise ValueError("rate and seconds must be positive")
    rng = random.Random(seed)
    running: set[asyncio.Task[None]] = set()

    async def guarded(i: int, intended: float) -> None:
        try:
            await fire(i, intended)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            window.error(type(exc).__name__)

    i = 0
    intended = window.start
    while True:
        intended += rng.expovariate(rate)
        if intended >= window.end:
            break
        delay = intended - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        window.arrivals += 1
        window.lag_ms.append(max(0.0, time.perf_counter() - intended) * 1e3)
        if len(running) >= max_outstanding:
            window.shed += 1
            window.error("Shed")
            continue
        task = asyncio.create_task(guarded(i, intended))
        running.add(task)
        task.add_done_callback(running.discard)
        i += 1
    await asyncio.sleep(max(0.0, window.end - time.perf_counter()))
    if running:
        await asyncio.wait(set(running), timeout=drain_seconds)
    left = len(running)
    for task in list(running):
        task.cancel()
    if running:
        await asyncio.wait(set(running), timeout=drain_seconds)
    return left


def ramp_rates(start: float, factor: float, steps: int) -> list[float]:
    """``steps`` rates from ``start``, each ``factor`` times the last."""
    if start <= 0 or factor <= 1 or steps <= 0:
        raise ValueError("start must be positive, factor above 1, steps positive")
    return [round(start * factor**k, 1) for k in range(steps)]


@dataclass(frozen=True, slots=True)
class Step:
    """One rate held for ``seconds``: what was offered, what completed, how fast."""

    offered_per_s: float
    completed_per_s: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    errors: int
    unfinished: int
    """Arrivals still in progress at the end of the drain (cancelled)."""
    lag_p99_ms: float
    """p99 of how late arrivals started (the load generator's own delay; in the latencies)."""
    seconds: float
    arrived_per_s: float | None = None
    """Arrivals in the window a second (None: not counted; the offered rate stands in)."""

    @property
    def kept_up(self) -> bool:
        arrived = self.offered_per_s if self.arrived_per_s is None else self.arrived_per_s
        return (
            self.completed_per_s >= KEPT_UP * arrived
            and self.unfinished == 0
            and self.errors <= 0.01 * arrived * self.seconds
        )


def peak(steps: Sequence[Step]) -> float:
    """The highest completed rate among the steps that kept up (else the highest of all)."""
    if not steps:
        return 0.0
    good = [s.completed_per_s for s in steps if s.kept_up]
    return max(good) if good else max(s.completed_per_s for s in steps)


# --- the no-op baseline ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def noop_server(
    host: str = "127.0.0.1",
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """``python -m benchmarks.noop`` in a process of its own: (process, target)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.noop",
        "--host",
        host,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30.0)
        text = line.decode().strip()
        if not text.startswith("noop: listening on "):
            raise RuntimeError(f"the no-op server did not start: {text!r}")
        yield process, text.rsplit(" ", 1)[1]
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10.0)
            except TimeoutError:
                process.kill()
                await process.wait()


async def baseline_step(
    stubs: Sequence[health_pb2_grpc.HealthStub],
    rate: float,
    seconds: float,
    *,
    seed: int,
    drain_seconds: float = DRAIN_SECONDS,
) -> tuple[Step, list[float]]:
    """One open-loop step of health ``Check`` calls, round robin over ``stubs``: the step and
    its latencies in ms (ascending, from each call's intended time)."""
    latencies: list[float] = []
    start = time.perf_counter() + 0.05
    window = Window(start=start, end=start + seconds)
    request = health_pb2.HealthCheckRequest()

    async def fire(i: int, intended: float) -> None:
        await stubs[i % len(stubs)].Check(request, timeout=30.0)
        done = time.perf_counter()
        if window.inside(done):
            window.completed += 1
        latencies.append((done - intended) * 1e3)

    unfinished = await run_step(rate, seconds, fire, window, seed=seed, drain_seconds=drain_seconds)
    latencies.sort()
    return make_step(rate, window, latencies, unfinished), latencies


def make_step(rate: float, window: Window, ordered_ms: Sequence[float], unfinished: int) -> Step:
    seconds = window.end - window.start
    lag = sorted(window.lag_ms)
    p = Percentiles.of(ordered_ms)
    return Step(
        offered_per_s=round(rate, 1),
        completed_per_s=round(window.completed / seconds, 1),
        p50_ms=p.p50,
        p99_ms=p.p99,
        p999_ms=p.p999,
        errors=window.errors + unfinished,
        unfinished=unfinished,
        lag_p99_ms=round(quantile(lag, 0.99), 3),
        seconds=round(seconds, 3),
        arrived_per_s=round(window.arrivals / seconds, 1),
    )


async def baseline(
    rates: Sequence[float],
    seconds: float,
    clients: int,
    *,
    seed: int = 1,
    drain_seconds: float = DRAIN_SECONDS,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[Step], list[float]]:
    """The no-op server driven at each rate in turn, over ``clients`` channels: the steps, and
    the latencies (ms, ascending) of the best step that kept up. Stops after the first step
    that fell behind."""
    say = progress or (lambda _: None)
    steps: list[Step] = []
    best: tuple[float, list[float]] = (-1.0, [])
    async with noop_server() as (_, target):
        channels = [grpc.aio.insecure_channel(target) for _ in range(max(1, clients))]
        try:
            stubs = [health_pb2_grpc.HealthStub(ch) for ch in channels]
            await asyncio.gather(*(s.Check(health_pb2.HealthCheckRequest()) for s in stubs))
            for k, rate in enumerate(rates):
                say(f"no-op baseline: {rate:,.0f} requests/s for {seconds:g} s")
                step, latencies = await baseline_step(
                    stubs, rate, seconds, seed=seed + k, drain_seconds=drain_seconds
                )
                steps.append(step)
                if step.kept_up and step.completed_per_s > best[0]:
                    best = (step.completed_per_s, latencies)
                if not step.kept_up:
                    break
        finally:
            await asyncio.gather(*(ch.close() for ch in channels))
    return steps, best[1]
