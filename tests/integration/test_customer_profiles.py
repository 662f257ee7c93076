"""Customers' profiles as read from PostgreSQL (``core.store.customer_profiles``): what a
profile shows, its bounds, merges, blocks by every key, and which customers a refresh finds."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from core.routing import model as m
from core.store import customer_fields as fields_store
from core.store import customer_profiles as cp
from core.store.blocklist import Blocklist, Kind
from core.store.customer_fields import FieldDef
from core.store.customer_records import CustomerData, CustomerStore

T = "acme"


@pytest.fixture
async def store(pool: asyncpg.Pool) -> CustomerStore:
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ($1)", T)
    return CustomerStore(pool)


async def _conversation(
    pool: asyncpg.Pool,
    conversation_id: str,
    customer_id: str,
    state: str,
    *,
    last_agent: str | None = None,
    age_days: int = 0,
) -> None:
    """A stored conversation row, as the shard's projection writes it."""
    at = dt.datetime.now(dt.UTC) - dt.timedelta(days=age_days)
    await pool.execute(
        """INSERT INTO conversations (tenant_id, conversation_id, channel, customer_id, state,
               last_agent_id, created_at, updated_at)
           VALUES ($1, $2, 'whatsapp', $3, $4, $5, $6, $6)""",
        T,
        conversation_id,
        customer_id,
        state,
        last_agent,
        at,
    )


async def test_a_profile_shows_fields_in_display_order_tags_groups_history_and_a_block(
    pool: asyncpg.Pool, store: CustomerStore
) -> None:
    for d in (
        FieldDef(
            key="tier",
            type="single_choice",
            display_name="Tier",
            display_order=2,
            choices=("gold", "silver"),
        ),
        FieldDef(key="spend", type="number", display_name="Spend", display_order=1),
        FieldDef(key="vip", type="boolean", display_name="VIP", display_order=3),
        FieldDef(
            key="likes",
            type="multiple_choice",
            display_name="Likes",
            display_order=4,
            choices=("tea", "cake"),
        ),
        FieldDef(key="old", type="text", display_name="Old", display_order=0),
    ):
        await fields_store.create_definition(pool, T, d)
    data = CustomerData(
        display_name="陳大文",
        phone="+85291234567",
        tags=("vip", "hk"),
        fields={"tier": "gold", "spend": 1200.0, "vip": True, "likes": ("tea", "cake"), "old": "x"},
    )
    await store.create(T, "k1", data)
    await fields_store.update_definition(
        pool, T, FieldDef(key="old", type="text", display_name="Old", enabled=False)
    )
    await store.create_group(T, "gold", "Gold members")
    await store.change_members(T, "gold", ["k1"], add=True)
    await _conversation(pool, "c1", "k1", "closed", last_agent="ann", age_days=3)
    await _conversation(pool, "c2", "k1", "closed", last_agent="bob", age_days=1)
    await _conversation(pool, "c3", "k1", "active", last_agent="cat")
    block = await Blocklist(pool).create(
        T, Kind.PHONE, "+85291234567", reason="abusive", created_by="sup", expires_at=None
    )
    assert block is not None

    found = await cp.profiles(pool, T, ["k1", "nobody"])

    assert list(found) == ["k1"]
    profile = found["k1"]
    assert profile.problem() is None
    assert profile == m.CustomerProfile(
        customer_id="k1",
        display_name="陳大文",
        fields=(
            m.ProfileField(key="spend", label="Spend", value="1200"),
            m.ProfileField(key="tier", label="Tier", value="gold"),
            m.ProfileField(key="vip", label="VIP", value="true"),
            m.ProfileField(key="likes", label="Likes", value="tea;cake"),
        ),
        tags=("vip", "hk"),
        groups=(m.ProfileGroup(group_id="gold", name="Gold members"),),
        previous_conversations=2,
        last_agent="bob",
        block=m.StandingBlock(block_id=block.block_id, reason="abusive"),
    )
    reopening = await cp.profiles(pool, T, ["k1"], excluding="c2")
    assert (reopening["k1"].previous_conversations, reopening["k1"].last_agent) == (1, "ann")


async def test_a_profile_is_cut_to_its_bounds(pool: asyncpg.Pool, store: CustomerStore) -> None:
    for i in range(m.MAX_PROFILE_FIELDS + 5):
        await fields_store.create_definition(
            pool, T, FieldDef(key=f"f{i:02}", type="text", display_name="L" * 200, display_order=i)
        )
    await store.create(
        T,
        "k1",
        CustomerData(
            tags=tuple(f"t{i}" for i in range(m.MAX_PROFILE_TAGS + 5)),
            fields={f"f{i:02}": "v" * 1000 for i in range(m.MAX_PROFILE_FIELDS + 5)},
        ),
    )
    for i in range(m.MAX_PROFILE_GROUPS + 3):
        await store.create_group(T, f"g{i:02}", "")
        await store.change_members(T, f"g{i:02}", ["k1"], add=True)

    profile = (await cp.profiles(pool, T, ["k1"]))["k1"]

    assert profile.problem() is None
    assert [f.key for f in profile.fields] == [f"f{i:02}" for i in range(m.MAX_PROFILE_FIELDS)]
    assert {len(f.value) for f in profile.fields} == {m.MAX_PROFILE_TEXT}
    assert len(profile.tags) == m.MAX_PROFILE_TAGS
    assert len(profile.groups) == m.MAX_PROFILE_GROUPS


async def test_a_merged_customer_shows_the_survivor_and_their_history_counts_together(
    pool: asyncpg.Pool, store: CustomerStore
) -> None:
    await store.create(T, "a", CustomerData(display_name="Ann", tags=("a",)))
    await store.create(T, "b", CustomerData(display_name="Ann B", tags=("b",)))
    await _conversation(pool, "old-b", "b", "closed", last_agent="bob")
    await _conversation(pool, "open-b", "b", "active")
    await _conversation(pool, "open-a", "a", "queued")
    await store.merge(T, "a", ["b"])

    found = await cp.profiles(pool, T, ["b"])
    refreshed = await cp.open_profiles(pool, T, ["a"])

    assert found["b"].customer_id == "a" and found["b"].tags == ("a", "b")
    assert (found["b"].previous_conversations, found["b"].last_agent) == (1, "bob")
    # a refresh of the survivor reaches the merged customer's open conversation too
    assert sorted(refreshed) == ["a", "b"]
    assert refreshed["a"] == refreshed["b"] == found["b"]


async def test_blocks_stand_on_the_id_phone_email_and_channel_ids_until_they_end(
    pool: asyncpg.Pool, store: CustomerStore
) -> None:
    await store.create(T, "k1", CustomerData(email="Ann@Example.com"))
    await store.create(T, "k2", CustomerData())
    await pool.execute(
        "INSERT INTO customer_identities (tenant_id, channel, external_id, customer_id)"
        " VALUES ($1, 'whatsapp', '85291234567', 'k2'), ($1, 'email', 'Bo@Example.com', 'k2')",
        T,
    )
    blocks = Blocklist(pool)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    by_email = await blocks.create(
        T, Kind.EMAIL, "ann@example.com", reason="spam", created_by="sup", expires_at=soon
    )
    by_wa = await blocks.create(
        T, Kind.PHONE, "+85291234567", reason="", created_by="sup", expires_at=None
    )
    assert by_email is not None and by_wa is not None

    found = await cp.profiles(pool, T, ["k1", "k2"])

    block = found["k1"].block
    assert block is not None and (block.block_id, block.reason) == (by_email.block_id, "spam")
    assert block.until == pytest.approx(soon.timestamp())
    assert found["k2"].block is not None and found["k2"].block.block_id == by_wa.block_id
    assert await cp.block_targets(pool, T, Kind.EMAIL, "ann@example.com") == ["k1"]
    assert await cp.block_targets(pool, T, Kind.PHONE, "+85291234567") == ["k2"]
    assert await cp.block_targets(pool, T, Kind.EMAIL, "bo@example.com") == ["k2"]
    assert await cp.block_targets(pool, T, Kind.CUSTOMER, "k1") == ["k1"]
    assert await cp.block_targets(pool, T, Kind.IP, "10.0.0.1") == []

    await blocks.unblock(T, by_wa.block_id, by="sup")
    assert (await cp.profiles(pool, T, ["k2"]))["k2"].block is None


async def test_refreshes_find_open_conversations_only_and_imports_by_time(
    pool: asyncpg.Pool, store: CustomerStore
) -> None:
    for customer in ("k1", "k2", "k3"):
        await store.create(T, customer, CustomerData())
    await _conversation(pool, "c1", "k1", "active")
    await _conversation(pool, "c2", "k2", "closed")
    since = await cp.database_now(pool)
    await store.update(T, "k1", CustomerData(tags=("new",)))
    await store.update(T, "k2", CustomerData(tags=("new",)))

    assert sorted(await cp.open_profiles(pool, T, ["k1", "k2", "k3"])) == ["k1"]
    changed = await cp.changed_open_profiles(pool, T, since)
    assert sorted(changed) == ["k1"] and changed["k1"].tags == ("new",)
    assert await cp.changed_open_profiles(pool, T, await cp.database_now(pool)) == {}
