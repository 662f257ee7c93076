"""A tenant's search index: built once from its published articles, then read by any number of
searches (immutable, so threads and tasks share it without locks).

Per field (title, keywords, body) a BM25 index (``bm25s``, Lucene's variant) over the field's
terms (``core.knowledge.segment.analyze``), and one more over the articles' Chinese characters
(single characters back up Chinese words that a customer cut differently from the article:
改 in 更改, 址 in 地址). Beside them, what the ranking needs without BM25: each article's set of
terms and of characters (which query words an article covers), each term's inverse document
frequency over whole articles, and the lexicon of English and Thai words for typo matching.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import bm25s
import numpy as np
import numpy.typing as npt

from core.knowledge.normalize import Script, fold
from core.knowledge.segment import Term, analyze, han_chars, member_lexicon

FIELDS = ("title", "keywords", "body")


@dataclass(frozen=True, slots=True)
class Article:
    """What search sees of an article. ``article_id`` is its key (the import's ``id``);
    ``language`` a BCP 47 tag (``zh-Hant``, ``th``, ``en``)."""

    article_id: str
    title: str
    body: str
    keywords: tuple[str, ...] = ()
    language: str = ""
    category: str = ""


@dataclass(frozen=True, slots=True)
class FieldIndex:
    """BM25 over one field of every article (``None`` when no article has a term there)."""

    bm25: bm25s.BM25 | None
    vocabulary: frozenset[str]

    def scores(self, term: str, size: int) -> npt.NDArray[np.float64]:
        """The BM25 score of every article for the one-term query ``term``."""
        if self.bm25 is None or term not in self.vocabulary:
            return np.zeros(size)
        return np.asarray(self.bm25.get_scores([term]), dtype=np.float64)


def _field_index(documents: list[list[str]]) -> FieldIndex:
    vocabulary = frozenset(t for doc in documents for t in doc)
    if not vocabulary:
        return FieldIndex(None, vocabulary)
    bm25 = bm25s.BM25(method="lucene")
    # bm25s counts an empty document as having no terms; a placeholder keeps it aligned
    bm25.index([doc or ["\x00"] for doc in documents], show_progress=False)
    return FieldIndex(bm25, vocabulary)


@dataclass(frozen=True, slots=True)
class Index:
    """See the module docstring; build with ``build_index``."""

    articles: tuple[Article, ...]
    fields: dict[str, FieldIndex]
    chars: FieldIndex
    terms: tuple[frozenset[str], ...]
    """Per article: every term of its title, keywords and body."""
    char_sets: tuple[frozenset[str], ...]
    idf: dict[str, float]
    """Per term: ln(1 + (N - df + 0.5) / (df + 0.5)) over whole articles."""
    lexicon: dict[str, frozenset[str]] = field(default_factory=dict)
    """English stems and Thai words (3 characters or more) -> the index terms they stand for
    (a concept's members stand for the concept): where typos are looked up."""
    languages: tuple[str, ...] = ()
    """Per article: the primary language subtag (``zh``, ``th``, ``en``)."""

    @property
    def size(self) -> int:
        return len(self.articles)

    def unknown_idf(self) -> float:
        """The IDF of a term no article has: as informative as a term of one article."""
        n = max(self.size, 1)
        return math.log(1 + (n - 1 + 0.5) / 1.5)


def primary_language(tag: str) -> str:
    """``zh-Hant-HK`` -> ``zh``; Cantonese (``yue``) and Chinese macro tags count as ``zh``."""
    head = tag.split("-")[0].lower()
    return "zh" if head in ("zh", "yue", "cmn", "lzh", "wuu") else head


def _lexicon(analyzed: Iterable[list[Term]]) -> dict[str, frozenset[str]]:
    """English stems and Thai words of the articles (concepts come from the thesaurus)."""
    found: dict[str, set[str]] = {}
    for terms in analyzed:
        for term in terms:
            if term.script is Script.HAN or term.text.startswith("~") or len(term.text) < 3:
                continue
            found.setdefault(term.text, set()).add(term.text)
    return {k: frozenset(v) for k, v in found.items()}


def build_index(articles: Sequence[Article]) -> Index:
    """The index of ``articles`` (the caller passes the published ones). CPU-bound: about a
    millisecond per article; run it off the event loop."""
    per_field: dict[str, list[list[Term]]] = {name: [] for name in FIELDS}
    chars: list[list[str]] = []
    for article in articles:
        texts = {
            "title": article.title,
            "keywords": " , ".join(article.keywords),
            "body": article.body,
        }
        for name, text in texts.items():
            per_field[name].append(analyze(text))
        chars.append(
            han_chars(fold(f"{article.title} {' '.join(article.keywords)} {article.body}"))
        )
    fields = {
        name: _field_index([[t.text for t in terms] for terms in per_field[name]])
        for name in FIELDS
    }
    term_sets = tuple(
        frozenset(t.text for name in FIELDS for t in per_field[name][i])
        for i in range(len(articles))
    )
    n = len(articles)
    df: dict[str, int] = {}
    for terms in term_sets:
        for term in terms:
            df[term] = df.get(term, 0) + 1
    idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
    lexicon = dict(member_lexicon())
    for key, targets in _lexicon(terms for name in FIELDS for terms in per_field[name]).items():
        lexicon[key] = lexicon.get(key, frozenset()) | targets
    return Index(
        articles=tuple(articles),
        fields=fields,
        chars=_field_index(chars),
        terms=term_sets,
        char_sets=tuple(frozenset(c) for c in chars),
        idf=idf,
        lexicon=lexicon,
        languages=tuple(primary_language(a.language) for a in articles),
    )
