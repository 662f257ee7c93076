from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from core.store.errors import InvalidInput, StoreUnavailable, UnknownTenant, translated_errors
from core.store.ingest import Attachment, Ingested, Ingestor, NewMessage

TENANT = "acme"


@pytest.fixture
async def tenant(pool: asyncpg.Pool) -> str:
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ($1)", TENANT)
    return TENANT


@pytest.fixture
def ingestor(pool: asyncpg.Pool, redis: aioredis.Redis, key_prefix: str) -> Ingestor:
    return Ingestor(pool, redis, prefix=key_prefix)


@pytest.fixture
async def dead_redis() -> AsyncIterator[aioredis.Redis]:
    """A client for a port nothing listens on."""
    client = aioredis.Redis.from_url(
        "redis://127.0.0.1:1/0", socket_connect_timeout=0.2, socket_timeout=0.2
    )
    yield client
    await client.aclose()


def inbound(provider_id: str | None = "wamid.HBgL1", **changes: object) -> NewMessage:
    fields: dict[str, object] = {
        "tenant": TENANT,
        "conversation_id": "c1",
        "channel": "whatsapp",
        "sender": "customer",
        "content": "你好, I need a refund",
        "provider_message_id": provider_id,
    }
    fields.update(changes)
    return NewMessage(**fields)  # type: ignore[arg-type]


async def message_count(pool: asyncpg.Pool) -> int:
    count: int = await pool.fetchval("SELECT count(*) FROM messages")
    return count


# --- idempotent ingestion ----------------------------------------------------------------------


async def test_a_repeated_provider_id_returns_the_original_and_stores_nothing(
    pool: asyncpg.Pool, tenant: str, ingestor: Ingestor
) -> None:
    first = await ingestor.ingest(inbound())
    again = await ingestor.ingest(inbound(content="a retried webhook, same wamid"))

    assert not first.duplicate and first.created_at is not None
    assert again == Ingested(first.message_id, duplicate=True)
    assert await message_count(pool) == 1
    assert await pool.fetchval("SELECT content FROM messages") == "你好, I need a refund"


async def test_concurrent_duplicates_store_exactly_one(
    pool: asyncpg.Pool, tenant: str, ingestor: Ingestor
) -> None:
    results = await asyncio.gather(*(ingestor.ingest(inbound()) for _ in range(10)))

    assert len({r.message_id for r in results}) == 1
    assert sorted(r.duplicate for r in results) == [False] + [True] * 9
    assert await message_count(pool) == 1


async def test_the_same_provider_id_on_another_channel_or_tenant_is_another_message(
    pool: asyncpg.Pool, tenant: str, ingestor: Ingestor
) -> None:
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ('globex')")
    a = await ingestor.ingest(inbound("id-1"))
    b = await ingestor.ingest(inbound("id-1", channel="line"))
    c = await ingestor.ingest(inbound("id-1", tenant="globex"))

    assert not any(r.duplicate for r in (a, b, c))
    assert len({a.message_id, b.message_id, c.message_id}) == 3


async def test_redis_answers_a_repeat_without_postgresql(
    pool: asyncpg.Pool, tenant: str, redis: aioredis.Redis, key_prefix: str
) -> None:
    first = await Ingestor(pool, redis, prefix=key_prefix).ingest(inbound())
    key = f"{key_prefix}dedupe:{TENANT}:whatsapp:wamid.HBgL1"
    assert await redis.get(key) == str(first.message_id).encode()
    assert 0 < await redis.ttl(key) <= 24 * 3600

    offline = await asyncpg.create_pool("postgresql://postgres@127.0.0.1:1/none", min_size=0)
    try:
        again = await Ingestor(offline, redis, prefix=key_prefix).ingest(inbound())
    finally:
        await offline.close()
    assert again == Ingested(first.message_id, duplicate=True)


async def test_postgresql_still_decides_once_the_redis_key_is_gone(
    pool: asyncpg.Pool, tenant: str, ingestor: Ingestor, redis: aioredis.Redis, key_prefix: str
) -> None:
    first = await ingestor.ingest(inbound())
    key = f"{key_prefix}dedupe:{TENANT}:whatsapp:wamid.HBgL1"
    await redis.delete(key)

    again = await ingestor.ingest(inbound())

    assert again == Ingested(first.message_id, duplicate=True)
    assert await message_count(pool) == 1
    assert await redis.get(key) == str(first.message_id).encode()  # the filter learns it again


async def test_with_redis_down_postgresql_alone_deduplicates(
    pool: asyncpg.Pool, tenant: str, dead_redis: aioredis.Redis, key_prefix: str
) -> None:
    ingestor = Ingestor(pool, dead_redis, prefix=key_prefix, redis_timeout=0.3)
    first = await ingestor.ingest(inbound("a"))
    again = await ingestor.ingest(inbound("a"))
    racing = await asyncio.gather(*(ingestor.ingest(inbound("b")) for _ in range(10)))

    assert again == Ingested(first.message_id, duplicate=True)
    assert sorted(r.duplicate for r in racing) == [False] + [True] * 9
    assert len({r.message_id for r in racing}) == 1
    assert await message_count(pool) == 2


async def test_without_a_redis_client_postgresql_alone_deduplicates(
    pool: asyncpg.Pool, tenant: str
) -> None:
    ingestor = Ingestor(pool, None)
    first = await ingestor.ingest(inbound())
    assert await ingestor.ingest(inbound()) == Ingested(first.message_id, duplicate=True)
    assert await message_count(pool) == 1


class RedisLink:
    """A loopback TCP proxy to the test Redis (TCP or Unix socket) that can be cut and restored."""

    def __init__(self, redis_url: str) -> None:
        parts = urlsplit(redis_url)
        self._unix = parts.path if parts.scheme == "unix" else None
        self._tcp = (parts.hostname or "127.0.0.1", parts.port or 6379)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._unix:
            up_reader, up_writer = await asyncio.open_unix_connection(self._unix)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self._tcp)
        pipes = {
            asyncio.ensure_future(_pipe(reader, up_writer)),
            asyncio.ensure_future(_pipe(up_reader, writer)),
        }
        self._pipes |= pipes
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pipes)
        self._pipes -= pipes
        for w in (writer, up_writer):
            w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def test_dedupe_uses_redis_again_once_it_returns(
    pool: asyncpg.Pool, tenant: str, redis: aioredis.Redis, redis_url: str, key_prefix: str
) -> None:
    link = RedisLink(redis_url)
    await link.start()
    client = aioredis.Redis(
        host="127.0.0.1", port=link.port, socket_connect_timeout=0.3, retry=Retry(NoBackoff(), 0)
    )
    ingestor = Ingestor(pool, client, prefix=key_prefix, redis_timeout=0.3, redis_retry_after=0)
    try:
        await link.cut()
        down = await ingestor.ingest(inbound("while-down"))
        assert await ingestor.ingest(inbound("while-down")) == Ingested(down.message_id, True)
        assert await redis.get(ingestor.dedupe_key(TENANT, "whatsapp", "while-down")) is None

        await link.start()  # the same port
        after = await ingestor.ingest(inbound("after"))
        repeat = await ingestor.ingest(inbound("while-down"))
    finally:
        await client.aclose()
        await link.cut()

    assert repeat == Ingested(down.message_id, duplicate=True)
    for provider_id, stored in (("after", after), ("while-down", down)):
        key = ingestor.dedupe_key(TENANT, "whatsapp", provider_id)
        assert await redis.get(key) == str(stored.message_id).encode()
    assert await message_count(pool) == 2


async def test_outbound_messages_are_stored_each_time_without_a_provider_id(
    pool: asyncpg.Pool, tenant: str, ingestor: Ingestor
) -> None:
    reply = NewMessage(
        tenant=TENANT,
        conversation_id="c1",
        channel="whatsapp",
        sender="agent",
        agent_id="ann",
        content="Refund issued",
        attachments=(Attachment("ab" * 32, "receipt.pdf", "application/pdf", 1234),),
    )
    first = await ingestor.ingest(reply)
    second = await ingestor.ingest(reply)
    bot = await ingestor.ingest(inbound(None, sender="bot", content="Hi! I am a bot"))

    assert not (first.duplicate or second.duplicate or bot.duplicate)
    rows = await pool.fetch("SELECT direction, sender, agent_id FROM messages ORDER BY message_id")
    assert [tuple(r) for r in rows] == [
        ("outbound", "agent", "ann"),
        ("outbound", "agent", "ann"),
        ("outbound", "bot", None),
    ]


# --- refusals ----------------------------------------------------------------------------------


BAD_MESSAGES = {
    "content too long": inbound(content="x" * 65537),
    "NUL": inbound(content="nul \x00 inside"),
    "invalid UTF-8": inbound(content="lone surrogate \udc80"),
    "provider id too long": inbound("p" * 257),
    "empty provider id": inbound(""),
    "empty conversation id": inbound(conversation_id=""),
    "colon in channel": inbound(channel="whats:app"),
    "malformed tenant": inbound(tenant="not a tenant id"),
    "agent without id": inbound(sender="agent"),
    "customer naming an agent": inbound(agent_id="ann"),
    "bad attachment": inbound(attachments=(Attachment("not-a-hash", "a", "b", 1),)),
    "naive time": inbound(created_at=dt.datetime(2026, 1, 1)),
}


async def test_bad_input_is_refused_and_writes_nothing(
    pool: asyncpg.Pool, tenant: str, ingestor: Ingestor, redis: aioredis.Redis, key_prefix: str
) -> None:
    for case, message in BAD_MESSAGES.items():
        with pytest.raises(InvalidInput) as refused:
            await ingestor.ingest(message)
        assert refused.value.code == "INVALID_ARGUMENT", case

    assert await message_count(pool) == 0
    assert [k async for k in redis.scan_iter(match=key_prefix + "*")] == []


async def test_an_unknown_tenant_is_refused_and_nothing_is_stored(
    pool: asyncpg.Pool, ingestor: Ingestor
) -> None:
    with pytest.raises(UnknownTenant) as refused:
        await ingestor.ingest(inbound())
    with pytest.raises(UnknownTenant):
        await ingestor.ingest(inbound(None, sender="system", content="hello"))
    with pytest.raises(UnknownTenant):
        await ingestor.resolve_customer(TENANT, "whatsapp", "85291234567")

    assert refused.value.code == "NOT_FOUND"
    assert await message_count(pool) == 0
    assert await pool.fetchval("SELECT count(*) FROM customers") == 0


async def test_a_tenant_created_after_a_refusal_can_ingest_the_same_message(
    pool: asyncpg.Pool, ingestor: Ingestor
) -> None:
    with pytest.raises(UnknownTenant):
        await ingestor.ingest(inbound())
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ($1)", TENANT)

    assert not (await ingestor.ingest(inbound())).duplicate
    assert (await ingestor.ingest(inbound())).duplicate


async def test_constraint_violations_surface_as_typed_errors(pool: asyncpg.Pool) -> None:
    """The schema is the backstop for anything validation misses."""
    with pytest.raises(InvalidInput), translated_errors():
        await pool.execute(
            "INSERT INTO messages (tenant_id, conversation_id, channel, direction, sender)"
            " VALUES ('acme', 'c1', 'sms', 'sideways', 'customer')"
        )
    with pytest.raises(UnknownTenant), translated_errors():
        await pool.execute("INSERT INTO customers (tenant_id, customer_id) VALUES ('x', 'y')")


async def test_postgresql_unavailable_is_store_unavailable(redis: aioredis.Redis) -> None:
    offline = await asyncpg.create_pool("postgresql://postgres@127.0.0.1:1/none", min_size=0)
    ingestor = Ingestor(offline, None, timeout=1)
    try:
        with pytest.raises(StoreUnavailable) as failed:
            await ingestor.ingest(inbound())
        with pytest.raises(StoreUnavailable):
            await ingestor.resolve_customer(TENANT, "line", "U123")
    finally:
        await offline.close()
    assert failed.value.code == "UNAVAILABLE"


# --- customers ---------------------------------------------------------------------------------


async def test_a_customer_and_identity_are_created_once_and_details_refreshed(
    pool: asyncpg.Pool, tenant: str, ingestor: Ingestor
) -> None:
    first = await ingestor.resolve_customer(
        TENANT, "whatsapp", "85291234567", name="陳大文", phone="+85291234567"
    )
    again = await ingestor.resolve_customer(TENANT, "whatsapp", "85291234567", name="Chan Tai Man")
    racing = await asyncio.gather(
        *(ingestor.resolve_customer(TENANT, "line", "U4af4980629") for _ in range(10))
    )

    assert again == first
    assert len(set(racing)) == 1 and racing[0] != first
    rows = await pool.fetch("SELECT customer_id, name, phone FROM customers ORDER BY name")
    # the newer name replaced the old; the phone, not given again, stayed
    assert [(r["name"], r["phone"]) for r in rows] == [("", None), ("Chan Tai Man", "+85291234567")]
    assert await pool.fetchval("SELECT count(*) FROM customer_identities") == 2


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
    pool: asyncpg.Pool, tenant: str, ingestor: Ingestor
) -> None:
    for external_id, details in BAD_CUSTOMERS:
        with pytest.raises(InvalidInput):
            await ingestor.resolve_customer(TENANT, "sms", external_id, **details)
    assert await pool.fetchval("SELECT count(*) FROM customers") == 0


async def test_a_stale_redis_entry_does_not_hide_a_new_message(
    pool: asyncpg.Pool, redis: aioredis.Redis, key_prefix: str, tenant: str
) -> None:
    """Redis remembers a provider id that PostgreSQL does not have (a restored database, or a
    Redis shared with another deployment): PostgreSQL decides, and the message is stored."""
    ingestor = Ingestor(pool, redis, prefix=key_prefix)
    message = NewMessage(
        tenant=tenant,
        conversation_id="c1",
        channel="whatsapp",
        sender="customer",
        content="hello",
        provider_message_id="wamid.STALE",
    )
    await redis.set(ingestor.dedupe_key(tenant, "whatsapp", "wamid.STALE"), "999")

    stored = await ingestor.ingest(message)

    assert not stored.duplicate
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    assert (await ingestor.ingest(message)) == Ingested(stored.message_id, duplicate=True)
