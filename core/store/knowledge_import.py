"""Reading a knowledge-base import: JSON lines, one article each (``usher kb import``).

Each line is an object with ``id`` (the article's key: 1 to 64 of A-Za-z0-9_.-), ``title``,
``language`` (BCP 47), and optionally ``body``, ``keywords`` (a list of strings, or one string
of comma-separated keywords), ``category`` (a category id) and ``published`` (default true).
Blank lines are skipped. ``parse_lines`` reads every line and reports every bad one with its
line number (``BadLines``), so that nothing is imported from a file with a mistake in it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from core.store.knowledge import ArticleData, check_article, check_id

KNOWN_KEYS: Final = frozenset(
    {"id", "title", "body", "keywords", "language", "category", "published"}
)
MAX_REPORTED: Final = 100


@dataclass(frozen=True, slots=True)
class BadLine:
    line: int
    """1-based."""
    message: str


class BadLines(ValueError):
    """Lines that are not articles; ``lines`` in file order (at most ``MAX_REPORTED``)."""

    def __init__(self, lines: list[BadLine]) -> None:
        super().__init__(f"{len(lines)} bad line(s)")
        self.lines = lines


def _keywords(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(k.strip() for k in value.split(",") if k.strip())
    if isinstance(value, list) and all(isinstance(k, str) for k in value):
        return tuple(k.strip() for k in value if k.strip())
    return None


def parse_line(text: str) -> tuple[str, ArticleData]:
    """One line as ``(id, data)``; ``ValueError`` saying what is wrong."""
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(item, dict):
        raise ValueError("not a JSON object")
    unknown = sorted(set(item) - KNOWN_KEYS)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    article_id = item.get("id")
    if not isinstance(article_id, str):
        raise ValueError("id: required, a string")
    strings = {}
    for key in ("title", "body", "language", "category"):
        value = item.get(key, "")
        if not isinstance(value, str):
            raise ValueError(f"{key}: must be a string")
        strings[key] = value
    if not strings["language"]:
        raise ValueError("language: required")
    keywords = _keywords(item.get("keywords"))
    if keywords is None:
        raise ValueError("keywords: must be a list of strings or a comma-separated string")
    published = item.get("published", True)
    if not isinstance(published, bool):
        raise ValueError("published: must be true or false")
    data = ArticleData(
        title=strings["title"].strip(),
        body=strings["body"].strip(),
        keywords=keywords,
        language=strings["language"],
        category=strings["category"],
        published=published,
    )
    problems = check_article(data)
    if problem := check_id(article_id):
        problems = {"id": problem, **problems}
    if problems:
        raise ValueError("; ".join(f"{k}: {v}" for k, v in problems.items()))
    return article_id, data


def parse_lines(lines: Iterable[str]) -> list[tuple[str, ArticleData]]:
    """Every article of a JSON-lines file; ``BadLines`` if any line is bad (an id twice too)."""
    found: list[tuple[str, ArticleData]] = []
    bad: list[BadLine] = []
    first_seen: dict[str, int] = {}
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            article_id, data = parse_line(text)
        except ValueError as exc:
            bad.append(BadLine(number, str(exc)))
            continue
        if article_id in first_seen:
            bad.append(BadLine(number, f"id {article_id!r} also on line {first_seen[article_id]}"))
            continue
        first_seen[article_id] = number
        found.append((article_id, data))
    if bad:
        raise BadLines(bad[:MAX_REPORTED])
    return found
