"""Ranking: a query against an ``Index``, in memory, and whether a bot may answer alone.

1. **Units.** The query is analyzed like an article (``core.knowledge.segment``, Chinese in
   precise mode); each distinct term is a unit. A Chinese word the index does not know is
   replaced by its known sub-words (送货地址 -> 送货, 地址) when it has some. A unit's
   candidates are the term itself when the index knows it, else, for English and Thai words of
   three characters or more, the index's words within ``FUZZY_MIN`` (rapidfuzz ``ratio``, 0-100)
   of it, each weighted by its similarity (a typo: "refnud" -> refund, "pasword" -> password).
2. **Score.** Per article, the sum over units and candidates of weight x BM25 of the candidate in
   each field x the field's weight (``FIELD_WEIGHTS``: title 3, keywords 2.5, body 1), plus, for
   Chinese units, ``CHAR_WEIGHT`` x the mean BM25 of the unit's characters. Articles in the
   query's language (given, else read from its script) get ``LANGUAGE_BOOST``.
3. **Coverage.** Per article, the share of the query's information it covers: the sum of the
   IDF of the units it contains (times the candidate's weight; a Chinese unit found only as
   characters counts ``CHAR_CREDIT`` x the share of its characters found) over the sum of the
   IDF of all units, a unit the index does not know counting as a term of a single article.
   A question about what the knowledge base never mentions ("do you sell pet food") has words
   no article has, and so a low coverage whatever its BM25.
4. **Confidence.** ``confident`` (the first result only): its coverage is at least
   ``MIN_COVERAGE`` and its score leads the second's by at least ``MIN_MARGIN`` (relative:
   (s1 - s2) / s1). The thresholds were chosen on the training half of the checked-in evaluation
   set (tests/kb_eval) and are reported on both halves (docs/knowledge.md).

A result's ``score`` is in [0, 1]: the first result's coverage times the result's share of the
first result's ranking score, so it falls with the rank and a bot can threshold it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz, process

from core.knowledge.index import Article, Index, primary_language
from core.knowledge.normalize import Script, fold, script_of
from core.knowledge.segment import Term, analyze, han_chars, is_stop, subwords, thai_pieces

FIELD_WEIGHTS: Final = {"title": 3.0, "keywords": 2.5, "body": 1.0}
CHAR_WEIGHT: Final = 0.6
CHAR_CREDIT: Final = 0.5
LANGUAGE_BOOST: Final = 3.0
FUZZY_MIN: Final = 80.0
FUZZY_LIMIT: Final = 3
MIN_COVERAGE: Final = 0.55
MIN_MARGIN: Final = 0.075
MAX_RESULTS: Final = 50

_SCRIPT_LANGUAGE: Final = {Script.HAN: "zh", Script.THAI: "th", Script.LATIN: "en"}


@dataclass(frozen=True, slots=True)
class Hit:
    """One ranked article. ``score`` in [0, 1] (see the module docstring); ``confident`` only
    ever on the first hit; ``coverage`` the share of the query the article covers."""

    article: Article
    score: float
    confident: bool
    coverage: float

    @property
    def article_id(self) -> str:
        return self.article.article_id


@dataclass(frozen=True, slots=True)
class _Unit:
    term: Term
    candidates: tuple[tuple[str, float], ...]
    """(index term, weight in (0, 1])."""
    chars: tuple[str, ...]
    idf: float


def _fuzzy(index: Index, keys: tuple[str, ...], text: str) -> list[tuple[str, float]]:
    found: dict[str, float] = {}
    for key, similarity, _ in process.extract(
        text, keys, scorer=fuzz.ratio, score_cutoff=FUZZY_MIN, limit=FUZZY_LIMIT
    ):
        for target in index.lexicon[key]:
            if target in index.idf:
                found[target] = max(found.get(target, 0.0), similarity / 100.0)
    return sorted(found.items(), key=lambda item: -item[1])


def _expanded(index: Index, terms: list[Term]) -> list[Term]:
    """Chinese words the index does not know, replaced by their known sub-words if any."""
    out: list[Term] = []
    for term in terms:
        if term.script is Script.HAN and term.text not in index.idf and len(term.text) > 2:
            known = [s for s in subwords(term.surface) if s.text in index.idf]
            if known:
                out.extend(known)
                continue
        out.append(term)
    return out


def _thai_repairs(index: Index, query: str, keys: tuple[str, ...]) -> list[tuple[str, Term]]:
    """Misspelt Thai words: newmm cuts a word it does not know into pieces (เติมเงน -> เติม,
    เงน), so each piece the index does not know is re-joined with its neighbours (windows of two
    and three pieces) and the best window within ``FUZZY_MIN`` of an index word replaces it.
    Returns (unknown piece, the term standing for the window)."""
    repairs: list[tuple[str, Term]] = []
    for pieces in thai_pieces(query):
        for i, piece in enumerate(pieces):
            if piece in index.idf or is_stop(piece) or analyze(piece, query=True) == []:
                continue
            if any(t.text in index.idf for t in analyze(piece, query=True)):
                continue
            best: tuple[float, str] | None = None
            for start, end in ((i - 1, i + 1), (i, i + 2), (i - 1, i + 2), (i - 2, i + 1)):
                if start < 0 or end > len(pieces):
                    continue
                window = "".join(pieces[start:end])
                match = process.extractOne(window, keys, scorer=fuzz.ratio, score_cutoff=FUZZY_MIN)
                if match is not None and (best is None or match[1] > best[0]):
                    best = (float(match[1]), window)
            if best is not None:
                repairs.append((piece, Term(best[1], Script.THAI, best[1])))
    return repairs


def units(index: Index, query: str) -> list[_Unit]:
    """The query's units with their candidates and weights (see the module docstring)."""
    keys = tuple(index.lexicon)
    seen: set[str] = set()
    found: list[_Unit] = []
    unknown = index.unknown_idf()
    repairs = _thai_repairs(index, query, keys) if keys else []
    replaced = {piece for piece, _ in repairs}
    terms = [t for t in analyze(query, query=True) if t.text not in replaced]
    for term in _expanded(index, terms) + [term for _, term in repairs]:
        if term.text in seen:
            continue
        seen.add(term.text)
        candidates: list[tuple[str, float]] = []
        if term.text in index.idf:
            candidates.append((term.text, 1.0))
        elif term.script is not Script.HAN and len(term.text) >= 3 and keys:
            candidates.extend(_fuzzy(index, keys, term.text))
        chars = tuple(han_chars(term.surface)) if term.script is Script.HAN else ()
        idf = max((index.idf[t] for t, _ in candidates), default=unknown)
        found.append(_Unit(term, tuple(candidates), chars, idf))
    return found


def _scores(index: Index, found: list[_Unit]) -> npt.NDArray[np.float64]:
    size = index.size
    total = np.zeros(size)
    for unit in found:
        for term, weight in unit.candidates:
            for name, field_weight in FIELD_WEIGHTS.items():
                total += weight * field_weight * index.fields[name].scores(term, size)
        if unit.chars and not unit.term.text.startswith("~"):
            chars = np.zeros(size)
            for ch in unit.chars:
                chars += index.chars.scores(ch, size)
            total += CHAR_WEIGHT * chars / len(unit.chars)
    return total


def _coverage(index: Index, found: list[_Unit], i: int) -> float:
    terms = index.terms[i]
    chars = index.char_sets[i]
    total = sum(u.idf for u in found)
    if total <= 0:
        return 0.0
    covered = 0.0
    for unit in found:
        best = max((w for t, w in unit.candidates if t in terms), default=0.0)
        if best < 1.0 and unit.chars and not unit.term.text.startswith("~"):
            share = sum(ch in chars for ch in unit.chars) / len(unit.chars)
            best = max(best, CHAR_CREDIT * share)
        covered += unit.idf * best
    return covered / total


def query_language(query: str, language: str | None) -> str | None:
    """The primary language a query is in: the caller's tag, else its script's."""
    if language:
        return primary_language(language)
    script = script_of(fold(query))
    return _SCRIPT_LANGUAGE.get(script) if script is not None else None


def search(index: Index, query: str, language: str | None = None, limit: int = 10) -> list[Hit]:
    """The articles of ``index`` that match ``query``, best first, at most ``limit`` (1 to
    ``MAX_RESULTS``); ``language`` (BCP 47) prefers articles in it. Pure and in memory."""
    limit = max(1, min(limit, MAX_RESULTS))
    if index.size == 0:
        return []
    found = units(index, query)
    if not found:
        return []
    scores = _scores(index, found)
    wanted = query_language(query, language)
    if wanted is not None:
        boost = np.array([LANGUAGE_BOOST if lang == wanted else 1.0 for lang in index.languages])
        scores = scores * boost
    order = [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] > 0][:limit]
    if not order:
        return []
    top = float(scores[order[0]])
    second = float(scores[order[1]]) if len(order) > 1 else 0.0
    first_coverage = _coverage(index, found, order[0])
    margin = (top - second) / top
    hits = []
    for rank, i in enumerate(order):
        coverage = first_coverage if rank == 0 else _coverage(index, found, i)
        confident = rank == 0 and coverage >= MIN_COVERAGE and margin >= MIN_MARGIN
        score = round(first_coverage * float(scores[i]) / top, 4)
        hits.append(Hit(index.articles[i], score, confident, round(coverage, 4)))
    return hits
