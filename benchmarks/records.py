"""The ``records`` suite: conversation lists, searches, keyword search and exports over a seeded
tenant, against a real PostgreSQL.

What is seeded (COPY, straight into the tables the shard writes, so seeding takes seconds):
``customers`` customers (multilingual names, unique E.164 phones, e-mails), ``conversations``
conversations (three channels, ten queues with five designated agents each out of fifty, the
agents in five departments of ten, half the queues also designating a department, the tenant
letting agents read their team's conversations; states as a day's records look: mostly closed,
some bot, waiting, active and wrap-up; tags, outcomes, created over ninety days; one in fifty
transferred to a department) and ``messages`` messages spread evenly over them, each a sentence in
English, Chinese or Thai; one in a hundred carries the searched words (``KEYWORDS``). The tables
are then vacuumed and analyzed, as autovacuum leaves a table that has lived a while.

What is measured, at the store (``core.store.conversation_lists``: the SQL, its rows and their
decoding; gRPC adds a constant per call), ``samples`` calls each, one after the other:
``list_p95_ms``, a console's first page (50, newest first, with its total) as a supervisor, as
an agent (their own, their queues' waiting ones and their team's), the waiting list
longest-waiting first, and a department's list (owner a member, queue designating it, or
waiting after a transfer to it);
``search_p95_ms``, filters that combine (state and queue, channel and tags, customer phone,
outcome in a created range, owner); ``keyword_p95_ms``, a word in the messages (Chinese, Thai,
English, no spaces); ``export_rows_per_s``, every conversation through the CSV export (server-side
cursor, chunks discarded) and ``export_peak_rss_mib``, this process's peak resident memory
meanwhile (flat: it does not grow with the rows); ``import_rows_per_s``, a generated CSV of
``imports`` new customers (names, phones, e-mails, tags) through the customers import
(``core.store.customer_import.import_customers``: parse, match, check, one transaction) into the
seeded tenant.

The keyword figure depends on the trigram index of migration 0002, which needs ``pg_trgm``: the
embedded PostgreSQL (the default without ``--database-url``) has no ``pg_trgm``, so there every
keyword search walks the messages; measure against a server with it for the figures that count.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import asyncpg
import click
import msgspec
from rich import box
from rich.console import Console
from rich.table import Table

from benchmarks import report
from benchmarks.core import percentile
from benchmarks.procstat import rss_bytes
from benchmarks.store import _forget, database
from core.routing import model as m
from core.store import customer_fields, customer_files
from core.store.conversation_lists import ConversationLists, ListFilter, Order, Scope
from core.store.customer_import import import_customers
from core.store.migrate import migrate
from core.store.records_export import csv_chunks

Progress = Callable[[str], None]

CHANNELS: Final = ("webchat", "whatsapp", "line")
QUEUES: Final = 10
AGENTS: Final = 50
AGENTS_PER_QUEUE: Final = 5
DEPARTMENTS: Final = 5
"""Agent ``a{i}`` is in department ``d{i % DEPARTMENTS}``; queue ``q{n}`` with ``n >=
QUEUES // 2`` also designates ``d{n % DEPARTMENTS}``."""
TRANSFERRED_SHARE: Final = 0.02
MESSAGES_SEARCHED_SHARE: Final = 0.01
KEYWORDS: Final = ("退款", "ยกเลิก", "invoice")
"""Chinese "refund", Thai "cancel", English: one message in a hundred carries one."""
TAGS: Final = ("vip", "billing", "complaint", "sales", "returning", "urgent")
_SENTENCES: Final = (
    "Hello, I would like to check the status of my order please",
    "Thanks, that solved it. Have a nice day",
    "My parcel has not arrived yet, can you help",
    "你好，我想查询一下我的订单状态",
    "谢谢你的帮助，问题已经解决了",
    "我的包裹还没有到，请帮我看看",
    "สวัสดีครับ ผมอยากสอบถามสถานะคำสั่งซื้อ",
    "ขอบคุณมากค่ะ ปัญหาได้รับการแก้ไขแล้ว",
    "พัสดุของฉันยังไม่มาถึงเลย ช่วยตรวจสอบให้หน่อย",
)
_NAMES: Final = ("Chan Tai Man", "Wong Siu Ming", "陈大文", "李小明", "สมชาย ใจดี", "Alice Lee")


@dataclass(frozen=True, slots=True)
class RecordsConfig:
    customers: int = 100_000
    conversations: int = 100_000
    messages: int = 1_000_000
    samples: int = 40
    seed: int = 1
    imports: int = 10_000
    """Customers in the imported CSV."""


def smoke(config: RecordsConfig) -> RecordsConfig:
    """A smoke size that runs in seconds."""
    return RecordsConfig(
        customers=2_000,
        conversations=2_000,
        messages=20_000,
        samples=10,
        seed=config.seed,
        imports=1_000,
    )


@dataclass(frozen=True, slots=True)
class RecordsResult:
    customers: int
    conversations: int
    messages: int
    list_p95_ms: float
    search_p95_ms: float
    keyword_p95_ms: float
    export_rows_per_s: float
    export_peak_rss_mib: float
    imports: int = 0
    import_rows_per_s: float = 0.0
    seed_rows_per_s: float = 0.0
    """How fast COPY seeded (all three tables); not a target."""

    def document(self) -> dict[str, Any]:
        return {"suite": "records", **{k: getattr(self, k) for k in self.__slots__}}


# --- seeding -----------------------------------------------------------------------------------


def _queue_agents(q: int) -> list[str]:
    return [f"a{(q * AGENTS_PER_QUEUE + i) % AGENTS}" for i in range(AGENTS_PER_QUEUE)]


def _state(rng: random.Random) -> str:
    roll = rng.random()
    for state, share in (
        ("bot", 0.02),
        ("queued", 0.04),
        ("offered", 0.01),
        ("active", 0.05),
        ("wrap_up", 0.01),
    ):
        if roll < share:
            return state
        roll -= share
    return "closed"


async def seed(conn: asyncpg.Connection, tenant: str, config: RecordsConfig) -> float:
    """Write the tenant; return rows per second."""
    rng = random.Random(config.seed)
    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    settings = m.TenantSettings(agents_see_team_conversations=True)
    await conn.execute(
        "INSERT INTO tenants (tenant_id, settings) VALUES ($1, $2::jsonb)",
        tenant,
        msgspec.json.encode(settings).decode(),
    )
    await conn.copy_records_to_table(
        "agents",
        records=[
            (
                tenant,
                f"a{i}",
                msgspec.json.encode(
                    m.AgentProfile(
                        agent_id=f"a{i}",
                        capacity=3,
                        departments=frozenset({f"d{i % DEPARTMENTS}"}),
                    )
                ).decode(),
                "offline",
                now,
            )
            for i in range(AGENTS)
        ],
        columns=["tenant_id", "agent_id", "profile", "status", "updated_at"],
    )
    await conn.copy_records_to_table(
        "queues",
        records=[
            (
                tenant,
                f"q{q}",
                msgspec.json.encode(
                    m.QueueSettings(
                        queue_id=f"q{q}",
                        designated_agents=frozenset(_queue_agents(q)),
                        designated_departments=(
                            frozenset({f"d{q % DEPARTMENTS}"}) if q >= QUEUES // 2 else frozenset()
                        ),
                    )
                ).decode(),
                now,
            )
            for q in range(QUEUES)
        ],
        columns=["tenant_id", "queue_id", "settings", "updated_at"],
    )
    await conn.copy_records_to_table(
        "customers",
        records=[
            (tenant, f"cu{i}", f"{rng.choice(_NAMES)} {i}", f"+8529{i:07d}", f"c{i}@example.com")
            for i in range(config.customers)
        ],
        columns=["tenant_id", "customer_id", "name", "phone", "email"],
    )
    conversations = []
    for i in range(config.conversations):
        state = _state(rng)
        created = now - dt.timedelta(seconds=rng.uniform(60, 90 * 86_400))
        queue = f"q{rng.randrange(QUEUES)}"
        agent = rng.choice(_queue_agents(int(queue[1:])))
        owned = state in ("active", "wrap_up")
        served = owned or (state == "closed" and rng.random() < 0.9)
        closed = state == "closed"
        conversations.append(
            (
                tenant,
                f"v{i:07d}",
                rng.choice(CHANNELS),
                f"cu{rng.randrange(config.customers)}",
                state,
                queue,
                agent if owned else None,
                agent if served else None,
                rng.choice(("resolved", "spam", "ignored")) if closed and served else None,
                ("agent_ended" if served else "left_message") if closed else None,
                rng.sample(TAGS, rng.randrange(3)),
                created,
                created + dt.timedelta(seconds=5) if state != "bot" else None,
                created + dt.timedelta(seconds=40) if served else None,
                created + dt.timedelta(minutes=15) if closed else None,
                created + dt.timedelta(minutes=15),
            )
        )
    await conn.copy_records_to_table(
        "conversations",
        records=conversations,
        columns=[
            "tenant_id",
            "conversation_id",
            "channel",
            "customer_id",
            "state",
            "queue_id",
            "owner_agent_id",
            "last_agent_id",
            "outcome",
            "close_reason",
            "tags",
            "created_at",
            "queued_at",
            "assigned_at",
            "closed_at",
            "updated_at",
        ],
    )
    transfers = [
        (
            tenant,
            f"t{i:07d}",
            c[1],
            c[7] or "a0",
            "department",
            f"d{rng.randrange(DEPARTMENTS)}",
            c[11] + dt.timedelta(seconds=20),
            "accepted",
            c[11] + dt.timedelta(seconds=20),
        )
        for i, c in enumerate(conversations)
        if rng.random() < TRANSFERRED_SHARE
    ]
    await conn.copy_records_to_table(
        "transfers",
        records=transfers,
        columns=[
            "tenant_id",
            "transfer_id",
            "conversation_id",
            "from_agent",
            "target",
            "target_id",
            "requested_at",
            "outcome",
            "resolved_at",
        ],
    )
    per = max(1, config.messages // max(1, config.conversations))

    def messages() -> Any:
        for n in range(config.messages):
            c = conversations[(n // per) % len(conversations)]
            text = rng.choice(_SENTENCES)
            if rng.random() < MESSAGES_SEARCHED_SHARE:
                text = f"{text} {rng.choice(KEYWORDS)}"
            inbound = n % 2 == 0
            yield (
                tenant,
                c[1],
                c[2],
                "inbound" if inbound else "outbound",
                "customer" if inbound else "agent",
                None if inbound else c[7],
                text,
                c[11] + dt.timedelta(seconds=n % per * 10),
            )

    await conn.copy_records_to_table(
        "messages",
        records=messages(),
        columns=[
            "tenant_id",
            "conversation_id",
            "channel",
            "direction",
            "sender",
            "agent_id",
            "content",
            "created_at",
        ],
    )
    # what autovacuum does to a table that has lived a while: statistics, hint bits, visibility
    for table in ("customers", "conversations", "transfers", "messages"):
        await conn.execute(f"VACUUM ANALYZE {table}")
    rows = config.customers + config.conversations + config.messages
    return rows / (time.perf_counter() - started)


# --- measuring ---------------------------------------------------------------------------------


async def _p95(calls: list[Callable[[], Awaitable[object]]], samples: int) -> float:
    """p95 in ms of ``samples`` calls, going round ``calls``, after one unmeasured round."""
    for call in calls:
        await call()
    took: list[int] = []
    for i in range(samples):
        started = time.perf_counter_ns()
        await calls[i % len(calls)]()
        took.append((time.perf_counter_ns() - started) // 1_000)
    return percentile(sorted(took), 0.95) / 1e3


async def _export(lists: ConversationLists, scope: Scope) -> tuple[float, float]:
    """(rows/s, peak RSS MiB) of a CSV export of every conversation."""
    me = [os.getpid()]
    peak = rss_bytes(me)
    rows = 0

    async def counted() -> Any:
        nonlocal rows
        async for record in lists.export(scope, ListFilter()):
            rows += 1
            yield record

    started = time.perf_counter()
    async for _chunk in csv_chunks(counted(), None):
        peak = max(peak, rss_bytes(me))
    elapsed = time.perf_counter() - started
    return rows / elapsed, peak / 2**20


def import_csv(rows: int, seed: int) -> bytes:
    """A CSV of ``rows`` new customers, keyed by external id, none matching a seeded one."""
    rng = random.Random(seed)
    header = list(customer_fields.BASE_COLUMNS)
    lines = [header]
    for i in range(rows):
        cells = dict.fromkeys(header, "")
        cells.update(
            external_id=f"imp{i}",
            display_name=f"{rng.choice(_NAMES)} {i}",
            phone=f"+8526{i:07d}",
            email=f"imported{i}@example.com",
            tags=";".join(rng.sample(TAGS, rng.randrange(3))),
        )
        lines.append([cells[c] for c in header])
    return customer_files.csv_bytes(lines)


async def _import(pool: asyncpg.Pool, tenant: str, config: RecordsConfig) -> float:
    """Rows/s of a real (committed) import of ``config.imports`` new customers."""
    content = import_csv(config.imports, config.seed)
    started = time.perf_counter()
    report = await import_customers(pool, tenant, content, "csv", key="external_id")
    elapsed = time.perf_counter() - started
    if not report.committed or report.created != config.imports:
        raise RuntimeError(f"the import created {report.created} of {config.imports} customers")
    return report.rows / elapsed


async def measure(
    pool: asyncpg.Pool, tenant: str, config: RecordsConfig, seeded: float
) -> RecordsResult:
    lists = ConversationLists(pool)
    everyone = Scope(tenant=tenant, pinner="credential:bench")
    a3 = await lists.agent_scope(tenant, "a3")
    agent = Scope(tenant=tenant, pinner="a3", agent_id="a3", queues=a3.queues, team=a3.team)
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    waiting = ListFilter(states=("queued", "offered"))

    def page(
        scope: Scope, f: ListFilter, order: Order = Order.NEWEST_FIRST
    ) -> Callable[[], Awaitable[object]]:
        return lambda: lists.page(scope, f, order, 50, None)

    list_p95 = await _p95(
        [
            page(everyone, ListFilter()),
            page(agent, ListFilter()),
            page(everyone, waiting, Order.LONGEST_WAITING_FIRST),
            page(everyone, ListFilter(departments=("d1",))),
        ],
        config.samples,
    )
    search_p95 = await _p95(
        [
            page(everyone, ListFilter(states=("closed",), queues=("q3",))),
            page(everyone, ListFilter(channels=("line",), any_tags=("vip", "urgent"))),
            page(everyone, ListFilter(phone="+85290000042")),
            page(everyone, ListFilter(outcomes=("spam",), created_from=since)),
            page(everyone, ListFilter(owner="a7", states=("active", "wrap_up"))),
            page(everyone, ListFilter(departments=("d2",), states=("queued", "offered"))),
        ],
        config.samples,
    )
    keyword_p95 = await _p95(
        [page(everyone, ListFilter(keyword=k)) for k in KEYWORDS], config.samples
    )
    rows_per_s, peak = await _export(lists, everyone)
    imported = await _import(pool, tenant, config)
    return RecordsResult(
        customers=config.customers,
        conversations=config.conversations,
        messages=config.messages,
        imports=config.imports,
        list_p95_ms=round(list_p95, 2),
        search_p95_ms=round(search_p95, 2),
        keyword_p95_ms=round(keyword_p95, 2),
        export_rows_per_s=round(rows_per_s, 1),
        export_peak_rss_mib=round(peak, 1),
        import_rows_per_s=round(imported, 1),
        seed_rows_per_s=round(seeded, 1),
    )


async def run_records(
    config: RecordsConfig, url: str | None, progress: Progress | None = None
) -> RecordsResult:
    """Seed a tenant of its own, measure, and (against ``url``) delete its rows."""
    say = progress or (lambda _: None)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    tenant = f"{prefix}-records"
    async with database(url) as dsn:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
                say(f"seeding {config.conversations:,} conversations")
                seeded = await seed(conn, tenant, config)
            try:
                say("measuring")
                return await measure(pool, tenant, config, seeded)
            finally:
                if url:
                    say("deleting the benchmark's rows")
                    await _forget(pool, prefix)
        finally:
            await pool.close()


def run(config: RecordsConfig, url: str | None, progress: Progress | None = None) -> RecordsResult:
    return asyncio.run(run_records(config, url, progress))


# --- the command -------------------------------------------------------------------------------

COLUMNS: Final = (
    ("customers", "customers", "{:,}"),
    ("conversations", "conversations", "{:,}"),
    ("messages", "messages", "{:,}"),
    ("list_p95_ms", "list p95 ms", "{:,.1f}"),
    ("search_p95_ms", "search p95 ms", "{:,.1f}"),
    ("keyword_p95_ms", "keyword p95 ms", "{:,.1f}"),
    ("export_rows_per_s", "export rows/s", "{:,.0f}"),
    ("export_peak_rss_mib", "export peak RSS MiB", "{:,.1f}"),
    ("imports", "imported customers", "{:,}"),
    ("import_rows_per_s", "import rows/s", "{:,.0f}"),
)


@click.command("records")
@click.option("--customers", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--conversations", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--messages", type=click.IntRange(min=0), default=1_000_000, show_default=True)
@click.option(
    "--imports",
    type=click.IntRange(min=1),
    default=10_000,
    show_default=True,
    help="Customers in the imported CSV.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=40,
    show_default=True,
    help="Calls measured per figure.",
)
@click.option(
    "--database-url",
    envvar="USHER_DATABASE_URL",
    show_envvar=True,
    default=None,
    help="PostgreSQL to measure: pending migrations are applied, the benchmark's rows deleted "
    "afterwards [default: an embedded one in a temporary directory].",
)
@click.option(
    "--quick", is_flag=True, help="A smoke size (2,000 conversations, 1,000 imported): seconds."
)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write the JSON document to this file.",
)
def records(
    customers: int,
    conversations: int,
    messages: int,
    imports: int,
    samples: int,
    database_url: str | None,
    quick: bool,
    seed: int,
    as_json: bool,
    out: Path | None,
) -> None:
    """Conversation lists over a seeded tenant: list, filtered search and keyword p95, export
    rows/s and peak memory, customers import rows/s.

    How it is measured is described in benchmarks/records.py.
    """
    config = RecordsConfig(customers, conversations, messages, samples, seed, imports)
    if quick:
        config = smoke(config)
    say = (lambda text: click.echo(f"records: {text}", err=True)) if sys.stderr.isatty() else None
    try:
        result = run(config, database_url, say)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise click.ClickException(f"PostgreSQL: {' '.join(str(exc).split())}") from exc
    document = result.document()
    if out is not None:
        report.write_json(document, out)
    if as_json:
        click.echo(report.dumps(document))
        return
    table = Table(title="bench records", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, title, form in COLUMNS:
        table.add_row(title, form.format(document[key]))
    console = Console()
    console.print(table)
    if quick:
        console.print("  --quick: a smoke run, not a measurement")
