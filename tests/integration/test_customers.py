from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from core.store.customers import Customers
from core.store.errors import InvalidInput, StoreUnavailable, UnknownTenant, translated_errors

TENANT = "acme"


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> str:
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ($1)", TENANT)
    return TENANT


@pytest.fixture
def customers(pool: asyncpg.Pool) -> Customers:
    return Customers(pool)


async def test_a_customer_and_identity_are_created_once_and_details_refreshed(
    pool: asyncpg.Pool, tenant: str, customers: Customers
) -> None:
    first = await customers.resolve(
        TENANT, "whatsapp", "85291234567", name="陳大文", phone="+85291234567"
    )
    again = await customers.resolve(TENANT, "whatsapp", "85291234567", name="Chan Tai Man")
    racing = await asyncio.gather(
        *(Customers(pool).resolve(TENANT, "line", "U4af4980629") for _ in range(10))
    )

    assert again == first
    assert len(set(racing)) == 1 and racing[0] != first
    rows = await pool.fetch("SELECT customer_id, name, phone FROM customers ORDER BY name")
    # the newer name replaced the old; the phone, not given again, stayed
    assert [(r["name"], r["phone"]) for r in rows] == [("", None), ("Chan Tai Man", "+85291234567")]
    assert await pool.fetchval("SELECT count(*) FROM customer_identities") == 2


class CountingPool:
    """A pool that counts what is sent through it: statements on the pool, and connections
    taken from it (``Customers`` uses nothing else)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.statements = 0

    async def fetchval(self, *args: Any, **kwargs: Any) -> Any:
        self.statements += 1
        return await self.pool.fetchval(*args, **kwargs)

    def acquire(self, **kwargs: Any) -> Any:
        self.statements += 1
        return self.pool.acquire(**kwargs)


async def test_a_known_identity_with_no_new_details_costs_no_round_trip(
    pool: asyncpg.Pool, tenant: str
) -> None:
    counting = CountingPool(pool)
    customers = Customers(counting)  # type: ignore[arg-type]
    details = {"name": "Mei", "phone": "+85291234567", "email": "mei@example.com"}

    first = await customers.resolve(TENANT, "webchat", "visitor-1", **details)
    sent = counting.statements
    again = await customers.resolve(TENANT, "webchat", "visitor-1", **details)
    bare = await customers.resolve(TENANT, "webchat", "visitor-1")  # no details: nothing new
    partial = await customers.resolve(TENANT, "webchat", "visitor-1", name="Mei")
    assert (again, bare, partial) == (first, first, first)
    assert counting.statements == sent

    # new details go to the database, which refreshes them; then they are known too
    renamed = await customers.resolve(TENANT, "webchat", "visitor-1", name="Mei Chan")
    assert renamed == first and counting.statements == sent + 1
    await customers.resolve(TENANT, "webchat", "visitor-1", name="Mei Chan", phone=details["phone"])
    assert counting.statements == sent + 1
    # back to the old name: stored again, not answered from an older entry
    await customers.resolve(TENANT, "webchat", "visitor-1", name="Mei")
    assert counting.statements == sent + 2
    row = await pool.fetchrow("SELECT name, phone, email FROM customers")
    assert tuple(row) == ("Mei", "+85291234567", "mei@example.com")

    # another identity is not known; bad input is refused before the cache is asked
    await customers.resolve(TENANT, "webchat", "visitor-2")
    assert counting.statements > sent + 2
    with pytest.raises(InvalidInput):
        await customers.resolve(TENANT, "webchat", "visitor-1", email="no-at-sign")


async def test_the_cache_is_bounded_least_recently_used_out_first(
    pool: asyncpg.Pool, tenant: str
) -> None:
    counting = CountingPool(pool)
    customers = Customers(counting, cache_size=2)  # type: ignore[arg-type]
    for visitor in ("a", "b", "a", "c"):  # c pushes out b, the least recently used
        await customers.resolve(TENANT, "webchat", visitor)
    sent = counting.statements

    await customers.resolve(TENANT, "webchat", "a")
    await customers.resolve(TENANT, "webchat", "c")
    assert counting.statements == sent
    await customers.resolve(TENANT, "webchat", "b")
    assert counting.statements == sent + 1


async def test_a_cached_identity_resolves_with_its_pool_closed(
    pool: asyncpg.Pool, tenant: str, database_url: str
) -> None:
    own = await asyncpg.create_pool(database_url, min_size=0, max_size=2)
    customers = Customers(own, timeout=1)
    try:
        first = await customers.resolve(TENANT, "line", "U123", name="Somchai")
    finally:
        await own.close()

    assert await customers.resolve(TENANT, "line", "U123", name="Somchai") == first
    with pytest.raises(StoreUnavailable):  # new details need the database
        await customers.resolve(TENANT, "line", "U123", name="Somchai Jaidee")


BAD_CUSTOMERS: list[tuple[str, dict[str, str]]] = [
    ("u1", {"phone": "85291234567"}),  # no +
    ("u1", {"phone": "+0123456"}),  # leading zero
    ("u1", {"phone": "+852 9123 4567"}),
    ("u1", {"phone": "+８５２９１２３４５６７"}),  # full-width digits
    ("u1", {"email": "no-at-sign"}),
    ("u1", {"name": "n" * 201}),
    ("", {}),
    ("u" * 201, {}),
    ("u\x00", {}),
]


async def test_bad_customer_details_are_refused_and_write_nothing(
    pool: asyncpg.Pool, tenant: str, customers: Customers
) -> None:
    for external_id, details in BAD_CUSTOMERS:
        with pytest.raises(InvalidInput):
            await customers.resolve(TENANT, "sms", external_id, **details)
    for field in ("tenant", "channel"):
        names = {"tenant": TENANT, "channel": "sms", field: "no:colons"}
        with pytest.raises(InvalidInput):
            await customers.resolve(names["tenant"], names["channel"], "u1")
    assert await pool.fetchval("SELECT count(*) FROM customers") == 0


async def test_an_unknown_tenant_is_refused_and_nothing_is_stored(
    pool: asyncpg.Pool, customers: Customers
) -> None:
    with pytest.raises(UnknownTenant) as refused:
        await customers.resolve(TENANT, "whatsapp", "85291234567")

    assert refused.value.code == "NOT_FOUND"
    assert await pool.fetchval("SELECT count(*) FROM customers") == 0
    # the refusal is not remembered: once the tenant exists, the customer is created
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ($1)", TENANT)
    assert await customers.resolve(TENANT, "whatsapp", "85291234567")
    assert await pool.fetchval("SELECT count(*) FROM customers") == 1


async def test_constraint_violations_surface_as_typed_errors(pool: asyncpg.Pool) -> None:
    """The schema is the backstop for anything validation misses."""
    with pytest.raises(InvalidInput), translated_errors():
        await pool.execute(
            "INSERT INTO customers (tenant_id, customer_id, phone) VALUES ('acme', 'c', 'x')"
        )
    with pytest.raises(UnknownTenant), translated_errors():
        await pool.execute("INSERT INTO customers (tenant_id, customer_id) VALUES ('x', 'y')")


async def test_postgresql_unavailable_is_store_unavailable() -> None:
    offline = await asyncpg.create_pool("postgresql://postgres@127.0.0.1:1/none", min_size=0)
    customers = Customers(offline, timeout=1)
    try:
        with pytest.raises(StoreUnavailable) as failed:
            await customers.resolve(TENANT, "line", "U123")
    finally:
        await offline.close()
    assert failed.value.code == "UNAVAILABLE"
