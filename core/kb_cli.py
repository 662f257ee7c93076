"""``usher kb``: import and search a tenant's knowledge base straight in the database.

``import --tenant T FILE`` loads articles from JSON lines (``core.store.knowledge_import``): the
``id`` is the article's key, so importing again updates; a file with a bad line imports nothing
and names every bad line. ``search --tenant T [--language L] [--json] QUERY`` prints the ranked
articles, or ``{"results": [{"id", "score", "confident"}]}``. Both use ``--database-url`` (or
``USHER_DATABASE_URL``), else the embedded PostgreSQL under ``--data-dir``, like ``usher
admin``; the schema is migrated first.
"""

from __future__ import annotations

import asyncio
import json
import sys
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

import asyncpg
import click

from core.admin_cli import _data_dir, _database_url
from core.config import StoreSettings
from core.store.connect import database_url
from core.store.errors import StoreError, UnknownTenant
from core.store.migrate import migrate

if TYPE_CHECKING:  # the search libraries load only when a kb command runs
    from core.store.knowledge import KnowledgeBase

T = TypeVar("T")
MAX_LIMIT = 50
"""``core.knowledge.rank.MAX_RESULTS``."""


def _on_knowledge_base(
    url: str | None, data_dir: Path, action: Callable[[KnowledgeBase], Awaitable[T]]
) -> T:
    from core.knowledge.index_files import IndexFiles
    from core.store.knowledge import Invalid, KnowledgeBase

    async def run() -> T:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            found, server = await database_url(StoreSettings(data_dir, url or None))
        try:
            pool = await asyncpg.create_pool(found, min_size=1, max_size=2, timeout=10.0)
            try:
                async with pool.acquire() as conn:
                    await migrate(conn)
                return await action(
                    KnowledgeBase(pool, index_files=IndexFiles(data_dir / "kb-index"))
                )
            finally:
                await pool.close()
        finally:
            if server is not None:
                await asyncio.to_thread(server.stop)

    try:
        return asyncio.run(run())
    except UnknownTenant as exc:
        raise click.ClickException(
            "no such tenant: create it with `usher admin create-tenant`"
        ) from exc
    except Invalid as exc:
        raise click.ClickException(f"refused: {exc}") from exc
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise click.ClickException(f"PostgreSQL failed: {exc}") from exc


async def _tenant_exists(kb: KnowledgeBase, tenant: str) -> None:
    # the articles' foreign key names a missing tenant only on a write; a search checks first
    if not await kb.tenant_exists(tenant):
        raise UnknownTenant(tenant)


@click.group("kb")
def kb() -> None:
    """The knowledge base: import articles, search them."""


@kb.command("import")
@click.option("--tenant", required=True, help="The tenant whose knowledge base this is.")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@_database_url
@_data_dir
def import_command(tenant: str, file: TextIO, database_url: str | None, data_dir: Path) -> None:
    """Import articles from FILE, JSON lines with id, language, category, title, body and
    keywords ('-': standard input). All or nothing: a bad line imports nothing."""
    from core.store.knowledge_import import BadLines, parse_lines

    try:
        articles = parse_lines(file)
    except BadLines as exc:
        for bad in exc.lines:
            click.echo(f"{getattr(file, 'name', '-')}:{bad.line}: {bad.message}", err=True)
        raise click.ClickException(f"{len(exc.lines)} bad line(s): nothing imported") from None
    if not articles:
        raise click.ClickException("no articles in the file: nothing imported")

    async def action(kb: KnowledgeBase) -> str:
        await _tenant_exists(kb, tenant)
        result = await kb.import_articles(tenant, articles)
        made = f", new categories: {', '.join(result.categories_created)}"
        return (
            f"imported {len(articles)} article(s) into {tenant}: {result.created} created, "
            f"{result.updated} updated{made if result.categories_created else ''}"
        )

    click.echo(_on_knowledge_base(database_url, data_dir, action))


@kb.command("search")
@click.option("--tenant", required=True, help="The tenant whose knowledge base to search.")
@click.option("--language", default=None, help="The query's language (BCP 47): preferred.")
@click.option(
    "--limit",
    type=click.IntRange(1, MAX_LIMIT),
    default=10,
    show_default=True,
    help="Results at most.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"results": [...]} instead.')
@click.argument("query")
@_database_url
@_data_dir
def search_command(
    tenant: str,
    language: str | None,
    limit: int,
    as_json: bool,
    query: str,
    database_url: str | None,
    data_dir: Path,
) -> None:
    """Search the published articles for QUERY, best first."""
    from core.store.knowledge import valid_language

    if language is not None and not valid_language(language):
        raise click.BadParameter("a BCP 47 tag like en, zh-Hant, th", param_hint="--language")

    async def action(kb: KnowledgeBase) -> list[tuple[str, float, bool, str, str]]:
        await _tenant_exists(kb, tenant)
        hits = await kb.search(tenant, query, language, limit)
        return [
            (h.article_id, h.score, h.confident, h.article.language, h.article.title) for h in hits
        ]

    found = _on_knowledge_base(database_url, data_dir, action)
    if as_json:
        results = [{"id": i, "score": s, "confident": c} for i, s, c, _, _ in found]
        json.dump({"results": results}, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    if not found:
        click.echo("no matching article")
        return
    for rank, (article_id, score, confident, lang, title) in enumerate(found, start=1):
        mark = " confident" if confident else ""
        click.echo(f"{rank:>2}. {article_id}  {score:.3f}{mark}  [{lang}] {title}")
