"""``usher bench chaos`` at a small size: a shard SIGKILLed, a front door SIGKILLed and
restarted, PostgreSQL paused, Redis stopped, all under load; nothing acknowledged may be lost,
duplicated, owned twice, put an agent over capacity or be refused afterwards. The suite runs
as a child process (it starts a Ray of its own). And the audit itself finds what is missing.

Invariants only: durations (recovery times) are the benchmark's business, never asserted here.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from typing import Any

import asyncpg

from benchmarks.chaos.audit import Audit, audit_store
from benchmarks.chaos.ledger import AckedMessage, AckedStart, Ledger

WAIT = 300.0  # a safety net against hangs, never an assertion about speed
CONTRACT = {
    "suite",
    "faults",
    "acknowledged",
    "lost",
    "duplicated",
    "double_owned",
    "over_capacity",
    "acknowledged_then_refused",
    "recovery_p99_s",
}
BROKEN_IF_NOT_ZERO = (
    "lost",
    "duplicated",
    "double_owned",
    "over_capacity",
    "acknowledged_then_refused",
    "invariant_violations",
    "rebuild_mismatches",
)


async def chaos(*args: str) -> dict[str, Any]:
    """``usher bench chaos --quick --json ARGS`` in a child process: its document."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS" and not k.startswith("USHER_")}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "core.cli", "bench", "chaos", "--quick", "--json", *args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), WAIT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    lines = out.decode().strip().splitlines()
    assert lines, err.decode()[-3000:]
    document = json.loads(lines[-1])
    assert isinstance(document, dict)
    broken = {k: document.get(k) for k in BROKEN_IF_NOT_ZERO if document.get(k) != 0}
    assert not broken, (broken, document.get("examples"))
    assert process.returncode == 0, err.decode()[-3000:]
    return document


def _kept_everything(document: dict[str, Any]) -> None:
    assert document.keys() >= CONTRACT
    assert document["suite"] == "chaos"
    assert document["clean"] is True
    assert document["acknowledged_conversations"] > 0
    assert document["acknowledged_messages"] > document["acknowledged_conversations"]
    assert document["events_checked"] > 0
    assert document["peak_load_ratio"] > 0  # the capacity check saw agents at work
    assert document["rebuilds_compared"] == document["setup"]["tenants"]
    replays = document["replays"]
    assert replays.get("duplicate", 0) > 0 and set(replays) == {"duplicate"}, replays
    assert document["unrecovered"] == 0
    assert all(f["recovery_s"] is not None for f in document["faults"])


async def test_quick_run_on_its_own_stores() -> None:
    """Embedded PostgreSQL and Redis of the run's own: PostgreSQL really is SIGSTOPped."""
    document = await chaos()
    _kept_everything(document)
    kinds = [f["kind"] for f in document["faults"]]
    assert kinds == ["shard_kill", "door_kill", "postgres_stop", "redis_stop"]
    assert document["faults"][0]["target"].startswith("shard pid ")
    assert document["setup"]["stores"].startswith("embedded")
    paused = document["faults"][2]
    assert paused["failed_probes"] > 0  # the clients saw PostgreSQL go away


async def test_given_stores_are_faulted_through_proxies(database_url: str, redis_url: str) -> None:
    """The session's PostgreSQL and Redis (the machine's, shared): never signalled; the service
    reaches them through proxies that stall and cut."""
    document = await chaos(
        *("--database-url", database_url, "--redis-url", redis_url),
        *("--shard-kills", "0", "--door-kills", "0", "--shards", "1", "--doors", "1"),
        *("--tenants", "1", "--postgres-stop-seconds", "2", "--redis-stop-seconds", "2"),
    )
    _kept_everything(document)
    assert [f["kind"] for f in document["faults"]] == ["postgres_stop", "redis_stop"]
    assert document["setup"]["stores"].startswith("given URLs through proxies")
    assert document["faults"][0]["failed_probes"] > 0  # the stall was felt
    conn = await asyncpg.connect(database_url)  # and the server itself is untouched
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def test_the_audit_finds_lost_and_duplicated_records(
    pool: asyncpg.Pool, database_url: str
) -> None:
    """A ledger that claims what the store does not hold: each claim is found."""
    tenant = f"audit{uuid.uuid4().hex[:8]}"
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ($1)", tenant)
    for _ in range(2):
        await pool.execute(
            "INSERT INTO messages (tenant_id, conversation_id, channel, direction, sender,"
            " content) VALUES ($1, 'c1', 'whatsapp', 'inbound', 'customer', 'twice')",
            tenant,
        )
    ledger = Ledger()
    ledger.starts.append(
        AckedStart(tenant, "conversations/gone", "r1", "cust", "main", "hi", "wamid-1")
    )
    ledger.messages.append(
        AckedMessage(
            tenant,
            "conversations/gone/messages/999",
            "conversations/gone",
            "hi",
            "customer",
            "wamid-1",
        )
    )
    audit = Audit()
    await audit_store(database_url, [tenant], ledger, audit)
    assert len(audit.lost_conversations) == 1
    assert len(audit.lost_messages) == 1
    assert audit.duplicated_messages == [f"{tenant} 'twice' stored 2 times"]


def test_the_ledger_finds_a_conversation_granted_twice() -> None:
    ledger = Ledger()
    first = ledger.own("t", "conversations/c1", "ann", at=1.0)
    ledger.own("t", "conversations/c1", "bob", at=2.0)  # ann had not let go
    handed = ledger.own("t", "conversations/c2", "ann", at=1.0)
    handed.released = 1.5
    ledger.own("t", "conversations/c2", "bob", at=2.0)  # after ann's transfer: fine
    assert first.released is None
    assert ledger.double_owned() == [("t", "conversations/c1")]
