from __future__ import annotations

import csv
import datetime as dt
import io
import json

import asyncpg
import pytest

from core.store.customers import Customers
from core.store.errors import InvalidInput
from core.store.records import (
    CONVERSATION_COLUMNS,
    TRANSCRIPT_COLUMNS,
    Attachment,
    ConversationQuery,
    Records,
    conversations_csv,
    transcript_csv,
)

TENANT = "acme"
T0 = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
async def records(pool: asyncpg.Pool) -> Records:
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ($1)", TENANT)
    return Records(pool)


@pytest.fixture
def customers(pool: asyncpg.Pool) -> Customers:
    return Customers(pool)


async def add_conversation(
    pool: asyncpg.Pool,
    conversation_id: str,
    *,
    customer_id: str = "cust-1",
    created_at: dt.datetime = T0,
    last_agent_id: str | None = None,
    channel: str = "whatsapp",
) -> None:
    await pool.execute(
        """INSERT INTO conversations (tenant_id, conversation_id, channel, customer_id, state,
               last_agent_id, tags, created_at, updated_at)
           VALUES ($1, $2, $3, $4, 'closed', $5, $6, $7, $7)""",
        TENANT,
        conversation_id,
        channel,
        customer_id,
        last_agent_id,
        ["vip", "退款"],
        created_at,
    )


async def say(
    pool: asyncpg.Pool,
    conversation_id: str,
    content: str,
    *,
    agent_id: str | None = None,
    attachments: tuple[Attachment, ...] = (),
) -> None:
    """A message stored as the shard stores one (a plain row in ``messages``)."""
    await pool.execute(
        """INSERT INTO messages (tenant_id, conversation_id, channel, direction, sender, agent_id,
                                 content, attachments)
           VALUES ($1, $2, 'whatsapp', $3, $4, $5, $6, $7::jsonb)""",
        TENANT,
        conversation_id,
        "outbound" if agent_id else "inbound",
        "agent" if agent_id else "customer",
        agent_id,
        content,
        json.dumps(
            [
                {"sha256": a.sha256, "name": a.name, "type": a.type, "size": a.size, "uri": a.uri}
                for a in attachments
            ],
            ensure_ascii=False,
        ),
    )


async def found(records: Records, **filters: object) -> list[str]:
    page = await records.search(ConversationQuery(tenant=TENANT, **filters))  # type: ignore[arg-type]
    assert page.next_page_token is None
    return [r.conversation_id for r in page.records]


async def test_keywords_in_chinese_thai_and_english_are_found(
    pool: asyncpg.Pool, records: Records, customers: Customers
) -> None:
    for i, text in enumerate(
        ["我想申請退款，謝謝", "สวัสดีค่ะ ขอคืนเงินได้ไหมคะ", "Where is my REFUND?", "100% off_road"]
    ):
        await add_conversation(pool, f"c{i}", created_at=T0 + dt.timedelta(minutes=i))
        await say(pool, f"c{i}", text)

    assert await found(records, keyword="退款") == ["c0"]
    assert await found(records, keyword="คืนเงิน") == ["c1"]
    assert await found(records, keyword="refund") == ["c2"]
    assert await found(records, keyword="  Refund ") == ["c2"]
    assert await found(records, keyword="cancel") == []
    assert await found(records, keyword="ยกเลิก") == []
    assert await found(records, keyword="取消") == []
    # LIKE's wildcards are taken literally
    assert await found(records, keyword="100%") == ["c3"]
    assert await found(records, keyword="%") == ["c3"]
    assert await found(records, keyword="f_r") == ["c3"]
    assert await found(records, keyword="o_f") == []  # "_" would match "off"


async def test_search_by_phone_customer_and_conversation(
    pool: asyncpg.Pool, records: Records, customers: Customers
) -> None:
    ann = await customers.resolve(TENANT, "whatsapp", "85291234567", phone="+85291234567")
    bob = await customers.resolve(TENANT, "line", "Ub0b", phone="+66812345678")
    await add_conversation(pool, "a1", customer_id=ann)
    await add_conversation(pool, "a2", customer_id=ann, created_at=T0 + dt.timedelta(hours=1))
    await add_conversation(pool, "b1", customer_id=bob)

    assert await found(records, phone="+85291234567") == ["a2", "a1"]
    assert await found(records, phone="+66812345678") == ["b1"]
    assert await found(records, phone="+14155550100") == []
    assert await found(records, customer_id=bob) == ["b1"]
    assert await found(records, conversation_id="a1") == ["a1"]
    assert await found(records, conversation_id="a1", customer_id=bob) == []
    page = await records.search(ConversationQuery(tenant=TENANT, conversation_id="b1"))
    assert page.records[0].customer_phone == "+66812345678"
    with pytest.raises(InvalidInput):
        await records.search(ConversationQuery(tenant=TENANT, phone="9123 4567"))


async def test_search_by_agent_finds_the_last_agent_and_message_authors(
    pool: asyncpg.Pool, records: Records, customers: Customers
) -> None:
    await add_conversation(pool, "last-ann", last_agent_id="ann")
    await add_conversation(pool, "wrote-ann", last_agent_id="bob", created_at=T0 - dt.timedelta(1))
    await add_conversation(pool, "bob-only", last_agent_id="bob", created_at=T0 - dt.timedelta(2))
    await say(pool, "wrote-ann", "Hello, Ann here", agent_id="ann")
    await say(pool, "bob-only", "Hello, Bob here", agent_id="bob")

    assert await found(records, agent_id="ann") == ["last-ann", "wrote-ann"]
    assert await found(records, agent_id="bob") == ["wrote-ann", "bob-only"]
    assert await found(records, agent_id="cy") == []
    assert await found(records, agent_id="ann", keyword="ann here") == ["wrote-ann"]


async def test_search_by_date_range_is_inclusive_then_exclusive(
    pool: asyncpg.Pool, records: Records
) -> None:
    for day in range(5):
        await add_conversation(pool, f"d{day}", created_at=T0 + dt.timedelta(days=day))

    hkt = dt.timezone(dt.timedelta(hours=8))
    assert await found(
        records, created_from=T0 + dt.timedelta(days=1), created_until=T0 + dt.timedelta(days=3)
    ) == ["d2", "d1"]
    assert await found(records, created_from=T0.astimezone(hkt) + dt.timedelta(days=4)) == ["d4"]
    assert await found(records, created_until=T0) == []
    with pytest.raises(InvalidInput):
        await records.search(ConversationQuery(tenant=TENANT, created_from=dt.datetime(2026, 1, 1)))


async def test_paging_covers_every_result_exactly_once_newest_first(
    pool: asyncpg.Pool, records: Records
) -> None:
    expected = []
    for i in range(23):  # groups of three share a created_at: the id breaks ties
        created_at = T0 + dt.timedelta(seconds=i // 3, microseconds=7)
        await add_conversation(pool, f"p{i:02}", created_at=created_at)
        expected.append((created_at, f"p{i:02}"))
    expected.sort(reverse=True)

    seen: list[str] = []
    token = None
    pages = 0
    while True:
        page = await records.search(ConversationQuery(tenant=TENANT, page_size=5), token)
        seen += [r.conversation_id for r in page.records]
        pages += 1
        token = page.next_page_token
        if token is None:
            break
        await add_conversation(pool, f"new{pages}", created_at=T0 + dt.timedelta(days=1))

    assert seen == [cid for _, cid in expected]  # rows added meanwhile are before the cursor
    assert pages == 5


async def test_page_sizes_and_tokens_are_checked(records: Records) -> None:
    for size in (0, 501, -1):
        with pytest.raises(InvalidInput):
            await records.search(ConversationQuery(tenant=TENANT, page_size=size))
    for token in ("garbage", "", "W10", "WyJ4IiwgMV0"):  # W10: [], WyJ4IiwgMV0: ["x", 1]
        with pytest.raises(InvalidInput):
            await records.search(ConversationQuery(tenant=TENANT), token)


async def test_the_transcript_round_trips_through_csv_intact(
    pool: asyncpg.Pool, records: Records, customers: Customers
) -> None:
    texts = ["我想申請退款", 'ขอคืนเงินค่ะ, "ด่วน"', "Line one\nline two, with a comma"]
    for text in texts:
        await say(pool, "c1", text)
    await say(
        pool,
        "c1",
        "=SUM(A1:A2)",
        agent_id="ann",
        attachments=(Attachment("ab" * 32, "收據.pdf", "application/pdf", 10),),
    )
    await say(pool, "other", "not in this transcript")

    messages = await records.transcript(TENANT, "c1")
    rows = list(csv.reader(io.StringIO(transcript_csv(messages), newline="")))

    assert rows[0] == list(TRANSCRIPT_COLUMNS)
    by_column = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [r["content"] for r in by_column] == [*texts, "=SUM(A1:A2)"]
    assert [r["sender"] for r in by_column] == ["customer"] * 3 + ["agent"]
    assert by_column[3]["agent_id"] == "ann" and by_column[0]["agent_id"] == ""
    assert json.loads(by_column[3]["attachments"])[0]["name"] == "收據.pdf"
    assert dt.datetime.fromisoformat(by_column[0]["created_at"]) == messages[0].created_at

    safe = list(csv.reader(io.StringIO(transcript_csv(messages, excel_safe=True), newline="")))
    assert safe[4][TRANSCRIPT_COLUMNS.index("content")] == "'=SUM(A1:A2)"
    assert await records.transcript(TENANT, "nobody") == ()


async def test_search_results_export_as_csv(
    pool: asyncpg.Pool, records: Records, customers: Customers
) -> None:
    customer = await customers.resolve(TENANT, "line", "U1", name="สมชาย, 陳", phone="+66812345678")
    for i in range(7):
        await add_conversation(
            pool, f"e{i}", customer_id=customer, created_at=T0 + dt.timedelta(minutes=i)
        )
    query = ConversationQuery(tenant=TENANT, phone="+66812345678", page_size=3)

    out = io.StringIO(newline="")
    assert await records.export(query, out) == 7
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))

    assert rows[0] == list(CONVERSATION_COLUMNS)
    by_column = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [r["conversation_id"] for r in by_column] == [f"e{i}" for i in reversed(range(7))]
    assert {r["customer_name"] for r in by_column} == {"สมชาย, 陳"}
    assert json.loads(by_column[0]["tags"]) == ["vip", "退款"]
    assert by_column[0]["ended_at"] == ""
    page = await records.search(query)
    assert conversations_csv(page.records).splitlines()[1:] == out.getvalue().splitlines()[1:4]


async def test_notes_are_kept_per_conversation_and_need_one(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ('notes')")
    await pool.execute(
        "INSERT INTO conversations (tenant_id, conversation_id, channel, customer_id, state,"
        " created_at, updated_at) VALUES ('notes', 'c1', 'line', 'k1', 'active', now(), now())"
    )
    records = Records(pool)

    await records.add_note("notes", "c1", "ann", "客人要求退款 — refund by Friday")
    await records.add_note("notes", "c1", "bob", "ลูกค้าโทรมาอีกครั้ง")

    notes = await records.notes("notes", "c1")
    assert [(n.author, n.body) for n in notes] == [
        ("ann", "客人要求退款 — refund by Friday"),
        ("bob", "ลูกค้าโทรมาอีกครั้ง"),
    ]
    with pytest.raises(InvalidInput):
        await records.add_note("notes", "nope", "ann", "no such conversation")
    with pytest.raises(InvalidInput):
        await records.add_note("notes", "c1", "ann", "")
