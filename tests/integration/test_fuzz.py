"""The fuzz suite at a small size (``benchmarks.fuzz``): generated requests for every RPC, sent
to a real front door; every answer canonical and without internals, the server still serving,
the invariants holding, and the store agreeing with the engine afterwards."""

from __future__ import annotations

import asyncpg

from benchmarks.fuzz import FuzzConfig, draw, methods, run_fuzz


def test_every_rpc_gets_requests() -> None:
    generated = draw(["queues/sales", "agents/ann"], 2_000, seed=3)
    assert {(c.service, c.method) for c in generated} == {(s, m) for s, m, _, _ in methods()}


async def test_fuzzed_requests_get_clean_answers(pool: asyncpg.Pool, redis_url: str) -> None:
    result = await run_fuzz(pool, redis_url, FuzzConfig(calls=150, seed=1))
    assert result.calls == 150
    assert result.problems == []
    assert result.still_serving
    assert result.invariants_hold
    assert result.store_agrees
    assert result.codes["INVALID_ARGUMENT"] > 0  # the garbage was refused at the edge
