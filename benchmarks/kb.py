"""The ``kb`` suite: the knowledge base's search quality and speed on the checked-in evaluation
set (tests/kb_eval), in process (``core.knowledge``: the same index and ranking the server and
``usher kb search`` use, without PostgreSQL).

The set: ``articles.jsonl`` (70 help-desk articles in en, zh-Hant, zh-Hans and th, with close
pairs such as delivery vs billing address) and ``queries.jsonl`` (230 queries written as
customers write: colloquial English, Cantonese mixed with English, Simplified queries for
Traditional articles and the reverse, Thai without spaces and with particles, typos, and 60
questions no article answers). Each query names the articles that answer it (any of them is a
hit) or none, its kind, and its half: ``train`` (where the thresholds of
``core.knowledge.rank`` were chosen) or ``test`` (held out).

Figures, overall and per half: ``top1`` and ``top3``, the share of answerable queries whose
first result / one of the first three answers it; ``confident_correct``, the share where the
first result is right and confident; ``confident_wrong``, where it is wrong but confident;
``unanswerable_rejected``, the share of unanswerable queries with no confident result;
``search_p95_ms``, a search's 95th percentile (one query at a time over the built index).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import click
from rich import box
from rich.console import Console
from rich.table import Table

from benchmarks import report
from core.knowledge import Article, Hit, build_index, search, warm

EVAL_DIR: Final = Path(__file__).resolve().parent.parent / "tests" / "kb_eval"
TARGET_TOP3: Final = 0.90
TARGET_REJECTED: Final = 0.75


@dataclass(frozen=True, slots=True)
class EvalQuery:
    query_id: str
    split: str
    kind: str
    language: str
    query: str
    expected: frozenset[str]


def load_articles(path: Path) -> list[Article]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            found.append(
                Article(
                    item["id"],
                    item["title"],
                    item.get("body", ""),
                    tuple(item.get("keywords", ())),
                    item["language"],
                    item.get("category", ""),
                )
            )
    return found


def load_queries(path: Path) -> list[EvalQuery]:
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            item = json.loads(line)
            found.append(
                EvalQuery(
                    item["id"],
                    item["split"],
                    item["kind"],
                    item.get("language", ""),
                    item["query"],
                    frozenset(item["expected"]),
                )
            )
    return found


@dataclass(frozen=True, slots=True)
class Outcome:
    query: EvalQuery
    ranked: tuple[str, ...]
    confident: bool
    seconds: float

    @property
    def top1(self) -> bool:
        return bool(self.ranked) and self.ranked[0] in self.query.expected

    @property
    def top3(self) -> bool:
        return any(i in self.query.expected for i in self.ranked[:3])


@dataclass(frozen=True, slots=True)
class Figures:
    queries: int
    answerable: int
    unanswerable: int
    top1: float
    top3: float
    confident_correct: float
    confident_wrong: float
    unanswerable_rejected: float
    search_p95_ms: float

    def document(self) -> dict[str, Any]:
        return {
            "queries": self.queries,
            "answerable": self.answerable,
            "unanswerable": self.unanswerable,
            "top1": round(self.top1, 4),
            "top3": round(self.top3, 4),
            "confident_correct": round(self.confident_correct, 4),
            "confident_wrong": round(self.confident_wrong, 4),
            "unanswerable_rejected": round(self.unanswerable_rejected, 4),
            "search_p95_ms": round(self.search_p95_ms, 3),
        }


def _share(count: int, total: int) -> float:
    return count / total if total else 1.0


def _p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(0.95 * len(ordered)) - 1))]


def figures(outcomes: list[Outcome]) -> Figures:
    answerable = [o for o in outcomes if o.query.expected]
    unanswerable = [o for o in outcomes if not o.query.expected]
    return Figures(
        queries=len(outcomes),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        top1=_share(sum(o.top1 for o in answerable), len(answerable)),
        top3=_share(sum(o.top3 for o in answerable), len(answerable)),
        confident_correct=_share(sum(o.top1 and o.confident for o in answerable), len(answerable)),
        confident_wrong=_share(
            sum(o.confident and not o.top1 for o in answerable), len(answerable)
        ),
        unanswerable_rejected=_share(sum(not o.confident for o in unanswerable), len(unanswerable)),
        search_p95_ms=_p95([o.seconds * 1e3 for o in outcomes]),
    )


def evaluate(articles: list[Article], queries: list[EvalQuery]) -> list[Outcome]:
    """Every query searched (its language given, as a channel knows it) over one index."""
    warm()
    index = build_index(articles)
    outcomes = []
    for q in queries:
        started = time.perf_counter()
        hits: list[Hit] = search(index, q.query, q.language or None, limit=10)
        elapsed = time.perf_counter() - started
        confident = bool(hits) and hits[0].confident
        outcomes.append(Outcome(q, tuple(h.article_id for h in hits), confident, elapsed))
    return outcomes


def document(outcomes: list[Outcome], articles: int) -> dict[str, Any]:
    """The suite's JSON document: the overall figures at the top, then per half and kind."""
    overall = figures(outcomes)
    halves = {
        split: figures([o for o in outcomes if o.query.split == split]).document()
        for split in ("train", "test")
    }
    kinds = sorted({o.query.kind for o in outcomes})
    return {
        "suite": "kb",
        "articles": articles,
        **overall.document(),
        "targets": {"top3": TARGET_TOP3, "unanswerable_rejected": TARGET_REJECTED},
        "splits": halves,
        "kinds": {
            kind: figures([o for o in outcomes if o.query.kind == kind]).document()
            for kind in kinds
        },
        "missed": [
            {"id": o.query.query_id, "query": o.query.query, "got": list(o.ranked[:3])}
            for o in outcomes
            if (o.query.expected and not o.top3) or (not o.query.expected and o.confident)
        ],
    }


ROWS: Final = (
    ("top1", "top-1 hit rate", "{:.1%}"),
    ("top3", "top-3 hit rate (target ≥ 90%)", "{:.1%}"),
    ("confident_correct", "confident and right", "{:.1%}"),
    ("confident_wrong", "confident and wrong", "{:.1%}"),
    ("unanswerable_rejected", "unanswerable, not confident (target ≥ 75%)", "{:.1%}"),
    ("queries", "queries", "{:,}"),
    ("search_p95_ms", "search p95 ms", "{:.2f}"),
)


@click.command("kb")
@click.option(
    "--articles",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=EVAL_DIR / "articles.jsonl",
    show_default=True,
)
@click.option(
    "--queries",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=EVAL_DIR / "queries.jsonl",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the JSON document to this file.",
)
def kb(articles: Path, queries: Path, as_json: bool, out: Path | None) -> None:
    """Knowledge-base search on the evaluation set: hit rates, rejection of unanswerable
    questions, search p95 (both halves: the thresholds were chosen on `train`)."""
    loaded = load_articles(articles)
    outcomes = evaluate(loaded, load_queries(queries))
    doc = document(outcomes, len(loaded))
    if out is not None:
        report.write_json(doc, out)
    if as_json:
        click.echo(report.dumps(doc))
        return
    table = Table(title="bench kb", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("figure")
    for column in ("all", "train", "test (held out)"):
        table.add_column(column, justify="right")
    for key, title, form in ROWS:
        table.add_row(
            title,
            form.format(doc[key]),
            form.format(doc["splits"]["train"][key]),
            form.format(doc["splits"]["test"][key]),
        )
    console = Console()
    console.print(table)
    kinds = Table(title="by kind", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("kind", "queries", "top-1", "top-3", "rejected"):
        kinds.add_column(column, justify="left" if column == "kind" else "right")
    for kind, figs in doc["kinds"].items():
        kinds.add_row(
            kind,
            str(figs["queries"]),
            f"{figs['top1']:.0%}" if figs["answerable"] else "-",
            f"{figs['top3']:.0%}" if figs["answerable"] else "-",
            f"{figs['unanswerable_rejected']:.0%}" if figs["unanswerable"] else "-",
        )
    console.print(kinds)
    if doc["missed"] and sys.stdout.isatty():
        console.print(f"  missed: {', '.join(m['id'] for m in doc['missed'])}")
