"""Console sessions in the store (``core.store.sessions``) on real PostgreSQL: a session's
token is a credential that expires, its expiry is reported like a revocation, and ended
sessions are purged after a while."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from core.store import credentials
from core.store.errors import InvalidCredential
from core.store.sessions import Lifetimes, Sessions


@pytest.fixture
async def sessions(pool: asyncpg.Pool) -> Sessions:
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ('acme')")
    return Sessions(pool)


async def test_an_expired_token_is_refused_and_reported_like_a_revoked_one(
    pool: asyncpg.Pool, sessions: Sessions
) -> None:
    issued = await sessions.start("acme", "ann", "agent")
    found = await credentials.verify(pool, issued.token)
    assert (found.role, found.agent_id) == ("agent", "ann")
    _, before = await credentials.revoked_since(pool, None)

    await pool.execute(
        "UPDATE api_credentials SET expires_at = now() - interval '1 second'"
        " WHERE credential_id = $1",
        issued.credential_id,
    )

    with pytest.raises(InvalidCredential):
        await credentials.verify(pool, issued.token)
    gone, _ = await credentials.revoked_since(pool, before - dt.timedelta(seconds=10))
    assert issued.credential_id in gone


async def test_a_refresh_chains_the_session_and_caps_it(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ('acme')")
    short = Sessions(pool, Lifetimes(session=dt.timedelta(minutes=30)))
    first = await short.start("acme", "ann", "agent")

    second = await short.refresh(first.credential_id, "supervisor")

    assert second is not None
    assert (second.session_id, second.role) == (first.credential_id, "supervisor")
    assert second.expires_at <= second.session_ends_at == first.session_ends_at
    assert await short.refresh(first.credential_id, "agent") is not None  # within the grace
    assert await short.end(second.credential_id) != ()
    assert await short.refresh(second.credential_id, "agent") is None


async def test_ended_sessions_are_purged_after_a_while(
    pool: asyncpg.Pool, sessions: Sessions
) -> None:
    old = await sessions.start("acme", "ann", "agent")
    recent = await sessions.start("acme", "bob", "agent")
    _, api_token = await credentials.create(pool, "acme", "admin")
    await pool.execute(
        "UPDATE api_credentials SET revoked_at = now() - interval '31 days'"
        " WHERE credential_id = $1",
        old.credential_id,
    )
    await sessions.end(recent.credential_id)

    assert await sessions.purge() == 1

    left = await pool.fetch("SELECT credential_id FROM api_credentials")
    assert old.credential_id not in {r["credential_id"] for r in left}
    assert len(left) == 2
    assert await credentials.verify(pool, api_token)
