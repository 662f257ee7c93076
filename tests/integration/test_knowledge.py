"""The knowledge base over real PostgreSQL: the store (checks, versions, the cached index seeing
changes, an all-or-nothing import), KnowledgeService through the SDK over gRPC (CRUD, paging,
field masks, refusals with their details, roles, search), and ``usher kb import`` / ``usher kb
search`` as subprocesses."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncpg
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from usher.client import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    KnowledgeClient,
    NotFound,
    PermissionDenied,
)
from usher.v1 import knowledge_service_pb2 as kb

from core.store.knowledge import ArticleData, InUse, Invalid, KnowledgeBase, Missing
from tests.integration.api_kit import Running, running

T = "acme"
ROOT = Path(__file__).resolve().parents[2]
ARTICLES = ROOT / "tests" / "kb_eval" / "articles.jsonl"
C = TypeVar("C", bound=KnowledgeClient)

DELIVERY = ArticleData(
    title="更改送貨地址",
    body="訂單出貨前，你可以在「我的訂單」修改送貨地址。",
    keywords=("改地址",),
    language="zh-Hant",
    category="delivery",
)
BILLING = ArticleData(
    title="Change your billing address",
    body="Edit the billing address of your card in Account settings.",
    keywords=("billing address",),
    language="en",
)


async def _tenant(pool: asyncpg.Pool, tenant: str = T) -> None:
    await pool.execute("INSERT INTO tenants (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING", tenant)


# --- the store ---------------------------------------------------------------------------------


async def test_the_store_checks_versions_and_rebuilds_the_index_on_change(
    pool: asyncpg.Pool,
) -> None:
    await _tenant(pool)
    store = KnowledgeBase(pool, max_age=3600.0)
    with pytest.raises(Missing):
        await store.create_article(T, "a1", DELIVERY)  # its category does not exist yet
    await store.create_category(T, "delivery", "Delivery", "")
    with pytest.raises(Invalid) as refused:
        await store.create_article(T, "bad id", ArticleData(title="", language="xx-!"))
    assert set(refused.value.violations) == {"article_id", "title", "language"}
    assert await store.version(T) == 0

    await store.create_article(T, "a1", DELIVERY)
    await store.create_article(T, "a2", BILLING)
    assert await store.version(T) == 2
    hits = await store.search(T, "点样改送货地址")  # Simplified, Cantonese
    assert [h.article_id for h in hits][:1] == ["a1"] and hits[0].confident

    # another process's change: seen once the cached index is older than max_age
    other = KnowledgeBase(pool, max_age=0.0)
    await other.update_article(T, "a1", dataclasses.replace(DELIVERY, published=False))
    assert "a1" not in [h.article_id for h in await other.search(T, "改送貨地址")]
    assert [h.article_id for h in await store.search(T, "改送貨地址")][:1] == ["a1"]  # cached
    await store.delete_article(T, "a2")  # this object's own change: at once
    assert "a2" not in [h.article_id for h in await store.search(T, "billing address")]

    with pytest.raises(InUse):
        await store.delete_category(T, "delivery")


async def test_an_import_is_all_or_nothing_and_updates_by_id(pool: asyncpg.Pool) -> None:
    await _tenant(pool)
    store = KnowledgeBase(pool)
    result = await store.import_articles(T, [("a1", DELIVERY), ("a2", BILLING)])
    assert (result.created, result.updated, result.categories_created) == (2, 0, ("delivery",))
    changed = dataclasses.replace(BILLING, title="Update the billing address")
    with pytest.raises(Invalid) as refused:
        await store.import_articles(T, [("a2", changed), ("a3", ArticleData(title=""))])
    assert "articles[1].title" in refused.value.violations
    assert (await store.get_article(T, "a2")).data.title == BILLING.title  # nothing changed
    result = await store.import_articles(T, [("a2", changed)])
    assert (result.created, result.updated) == (0, 1)
    assert (await store.get_article(T, "a2")).data.title == "Update the billing address"


# --- the service -------------------------------------------------------------------------------


@dataclass
class Desk:
    api: Running
    admin: KnowledgeClient
    agent: KnowledgeClient


@pytest.fixture
async def desk(pool: asyncpg.Pool, redis_url: str) -> AsyncIterator[Desk]:
    async with running(pool, redis_url, with_core=True) as api, AsyncExitStack() as stack:

        async def client(role: str, agent_id: str | None = None) -> KnowledgeClient:
            token = await api.token(T, role, agent_id)
            return await stack.enter_async_context(KnowledgeClient(api.target, token))

        yield Desk(api, await client("admin"), await client("agent", "ann"))


def _violations(exc: InvalidArgument) -> set[str]:
    found = set()
    assert exc.status is not None
    for detail in exc.status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            found |= {v.field for v in bad.field_violations}
    return found


async def test_knowledge_service_through_the_sdk(desk: Desk) -> None:
    admin, agent = desk.admin, desk.agent
    category = await admin.create_knowledge_category(
        kb.CreateKnowledgeCategoryRequest(
            category_id="delivery", category=kb.KnowledgeCategory(display_name="Delivery")
        )
    )
    assert category.category.name == "knowledgeCategories/delivery"
    with pytest.raises(AlreadyExists):
        await admin.create_knowledge_category(
            kb.CreateKnowledgeCategoryRequest(category_id="delivery")
        )

    article = kb.Article(
        category="knowledgeCategories/delivery",
        language="zh-Hant",
        title="更改送貨地址",
        body="訂單出貨前，你可以在「我的訂單」修改送貨地址。",
        keywords=["改地址"],
        published=True,
    )
    made = await admin.create_article(kb.CreateArticleRequest(article_id="a1", article=article))
    assert made.article.name == "articles/a1" and made.article.create_time.seconds > 0
    for i in range(2, 5):
        await admin.create_article(
            kb.CreateArticleRequest(
                article_id=f"a{i}",
                article=kb.Article(language="en", title=f"Opening hours {i}", published=i != 4),
            )
        )

    # refusals name their fields; nothing is stored
    with pytest.raises(InvalidArgument) as bad:
        await admin.create_article(
            kb.CreateArticleRequest(article_id="a9", article=kb.Article(language="en"))
        )
    assert _violations(bad.value) == {"article.title"}
    with pytest.raises(InvalidArgument) as bad:
        await admin.search_articles(kb.SearchArticlesRequest(query="hours", page_size=21))
    assert "page_size" in _violations(bad.value)
    with pytest.raises(NotFound):
        await admin.get_article(kb.GetArticleRequest(name="articles/a9"))
    with pytest.raises(NotFound):
        await admin.create_article(
            kb.CreateArticleRequest(
                article=kb.Article(language="en", title="x", category="knowledgeCategories/nope")
            )
        )
    with pytest.raises(FailedPrecondition):
        await admin.delete_knowledge_category(
            kb.DeleteKnowledgeCategoryRequest(name="knowledgeCategories/delivery")
        )

    # paging, filters
    first = await agent.list_articles(kb.ListArticlesRequest(page_size=2))
    second = await agent.list_articles(
        kb.ListArticlesRequest(page_size=2, page_token=first.next_page_token)
    )
    names = [a.name for a in (*first.articles, *second.articles)]
    assert names == ["articles/a1", "articles/a2", "articles/a3", "articles/a4"]
    assert second.next_page_token == ""
    only = await agent.list_articles(kb.ListArticlesRequest(language="zh"))
    assert [a.name for a in only.articles] == ["articles/a1"]

    # an update through a mask leaves the other fields alone
    updated = await admin.update_article(
        kb.UpdateArticleRequest(
            article=kb.Article(name="articles/a1", keywords=["改地址", "address"]),
            update_mask=field_mask_pb2.FieldMask(paths=["keywords"]),
        )
    )
    assert list(updated.article.keywords) == ["改地址", "address"]
    assert updated.article.title == "更改送貨地址"

    # agents search (Simplified and Cantonese for a Traditional article) but do not edit
    found = await agent.search_articles(kb.SearchArticlesRequest(query="点样改送货地址"))
    assert found.results[0].article.name == "articles/a1"
    assert found.results[0].confident and 0 < found.results[0].score <= 1
    hours = await agent.search_articles(kb.SearchArticlesRequest(query="opening hours"))
    assert "articles/a4" not in [r.article.name for r in hours.results]  # unpublished
    with pytest.raises(PermissionDenied):
        await agent.create_article(
            kb.CreateArticleRequest(article=kb.Article(language="en", title="x"))
        )

    await admin.delete_article(kb.DeleteArticleRequest(name="articles/a1"))
    gone = await agent.search_articles(kb.SearchArticlesRequest(query="改送貨地址"))
    assert "articles/a1" not in [r.article.name for r in gone.results]
    await admin.delete_knowledge_category(
        kb.DeleteKnowledgeCategoryRequest(name="knowledgeCategories/delivery")
    )


# --- the command line --------------------------------------------------------------------------


def _usher(
    database_url: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "USHER_DATABASE_URL": database_url}
    env.pop("USHER_DATA_DIR", None)
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


async def test_usher_kb_import_and_search(
    pool: asyncpg.Pool, database_url: str, tmp_path: Path
) -> None:
    await _tenant(pool, "kbcli")
    done = _usher(database_url, "kb", "import", "--tenant", "kbcli", str(ARTICLES))
    assert done.returncode == 0, done.stderr
    assert "70 created, 0 updated" in done.stdout

    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "en-topup", "language": "en", "title": "Top up, changed"}\n'
        "not json\n"
        '{"id": "x", "language": "en"}\n',
        encoding="utf-8",
    )
    refused = _usher(database_url, "kb", "import", "--tenant", "kbcli", str(bad))
    assert refused.returncode == 1
    assert f"{bad}:2: not JSON" in refused.stderr and f"{bad}:3: title: required" in refused.stderr
    assert "nothing imported" in refused.stderr
    title = await pool.fetchval(
        "SELECT title FROM kb_articles WHERE tenant_id = 'kbcli' AND article_id = 'en-topup'"
    )
    assert title == "Top up your prepaid SIM"

    again = _usher(database_url, "kb", "import", "--tenant", "kbcli", str(ARTICLES))
    assert "0 created, 70 updated" in again.stdout

    found = _usher(
        database_url,
        "kb",
        "search",
        "--tenant",
        "kbcli",
        "--json",
        "--language",
        "th",
        "ลืมรหัสผานค่ะ",
    )
    assert found.returncode == 0, found.stderr
    results = json.loads(found.stdout)["results"]
    assert results[0]["id"] == "th-reset-password" and results[0]["confident"] is True
    assert set(results[0]) == {"id", "score", "confident"}
    text = _usher(database_url, "kb", "search", "--tenant", "kbcli", "refund 點搞")
    assert text.returncode == 0 and "refund-request" in text.stdout.splitlines()[0]
    missing = _usher(database_url, "kb", "search", "--tenant", "nope", "hi")
    assert missing.returncode == 1 and "no such tenant" in missing.stderr
