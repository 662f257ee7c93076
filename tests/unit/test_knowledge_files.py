"""The command line's speed-ups keep search's answers: newmm's dictionary as a set cuts Thai
as pythainlp's trie does, and an index read back from disk ranks as the one built."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from pythainlp.tokenize import word_tokenize
from pythainlp.util import Trie

from core.knowledge import Article, build_index, search
from core.knowledge.index_files import IndexFiles
from core.knowledge.segment import _WordSet

ARTICLES = Path(__file__).parents[1] / "kb_eval" / "articles.jsonl"
THAI_WORDS = ["ลืม", "รหัส", "รหัสผ่าน", "ผ่าน", "เติม", "เงิน", "เติมเงิน", "ค่ะ", "ครับ"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([*THAI_WORDS, "ผา", "น", "ก"]), max_size=8))
def test_the_word_set_cuts_thai_as_the_trie_does(pieces: list[str]) -> None:
    text = "".join(pieces)
    trie, words = Trie(THAI_WORDS), _WordSet(THAI_WORDS)
    for start in range(len(text)):
        assert words.prefixes(text, start) == trie.prefixes(text, start)
    assert word_tokenize(text, custom_dict=words, engine="newmm") == word_tokenize(
        text, custom_dict=trie, engine="newmm"
    )


def _articles() -> list[Article]:
    rows = [json.loads(line) for line in ARTICLES.read_text(encoding="utf-8").splitlines()]
    return [
        Article(r["id"], r["title"], r["body"], tuple(r.get("keywords", ())), r["language"])
        for r in rows
    ]


def test_an_index_read_back_ranks_as_built_and_a_changed_content_misses(tmp_path: Path) -> None:
    index = build_index(_articles())
    files = IndexFiles(tmp_path)
    assert files.load("t", "v1") is None
    files.save("t", "v1", index)
    kept = files.load("t", "v1")
    assert kept is not None
    for query in ("refund 點搞", "ลืมรหัสผานค่ะ", "where is my parcel"):
        assert search(kept, query, None) == search(index, query, None)
    assert files.load("t", "v2") is None
    files.save("t", "v2", index)
    assert [p.name.split(".")[0] for p in tmp_path.iterdir()] == ["t"]  # the older one is gone
    (next(tmp_path.iterdir())).write_bytes(b"not a pickle")
    assert files.load("t", "v2") is None
