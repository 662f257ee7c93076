"""Knowledge-base search: multilingual (Chinese Traditional and Simplified with Cantonese,
Thai, English), typo-tolerant, BM25-ranked, with a confidence a bot can act on.

Pure and in memory: ``build_index(articles)`` once per tenant (``core.store.knowledge`` caches
it and rebuilds it when articles change), then ``search(index, query, language)`` per query.
See docs/knowledge.md for the pipeline and the confidence rule.
"""

from core.knowledge.index import Article, Index, build_index
from core.knowledge.rank import Hit, search
from core.knowledge.segment import warm

__all__ = ["Article", "Hit", "Index", "build_index", "search", "warm"]
