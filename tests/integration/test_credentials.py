from __future__ import annotations

import asyncpg
import pytest

from core.store import credentials


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> str:
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ('acme')")
    return "acme"


async def test_a_token_verifies_to_its_credential_and_only_its_hash_is_stored(
    pool: asyncpg.Pool, tenant: str
) -> None:
    credential, token = await credentials.create(pool, tenant, "agent", agent_id="ann")

    assert await credentials.verify(pool, token) == credential
    stored = await pool.fetchval("SELECT secret_hash FROM api_credentials")
    assert token.rsplit("_", 1)[1] not in stored


@pytest.mark.parametrize("mangle", [lambda t: t[:-1] + "x", lambda t: "nope", lambda t: ""])
async def test_a_wrong_token_is_refused(pool: asyncpg.Pool, tenant: str, mangle: object) -> None:
    _, token = await credentials.create(pool, tenant, "gateway")
    with pytest.raises(credentials.InvalidCredential):
        await credentials.verify(pool, mangle(token))  # type: ignore[operator]


async def test_a_revoked_token_is_refused(pool: asyncpg.Pool, tenant: str) -> None:
    credential, token = await credentials.create(pool, tenant, "admin")
    assert await credentials.revoke(pool, credential.credential_id)
    with pytest.raises(credentials.InvalidCredential):
        await credentials.verify(pool, token)


async def test_roles_are_checked(pool: asyncpg.Pool, tenant: str) -> None:
    with pytest.raises(ValueError):
        await credentials.create(pool, tenant, "root")
    with pytest.raises(ValueError):
        await credentials.create(pool, tenant, "agent")
