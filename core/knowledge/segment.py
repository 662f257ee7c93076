"""Segmentation: folded text (``core.knowledge.normalize``) into index terms, per script.

- **Chinese** (Han runs): jieba, with the thesaurus' Chinese members in its dictionary.
  Articles are cut in search mode (long words also give their sub-words: 营业时间 -> 营业,
  时间, 营业时间), queries in precise mode (one term per word the customer wrote). Function words
  and Cantonese particles (``STOP_ZH``) are dropped.
- **Thai**: pythainlp's ``newmm`` (dictionary maximal matching) over its Thai word list plus the
  thesaurus' Thai members; politeness particles (ครับ ค่ะ คะ นะ จ้ะ...), pronouns, fillers and
  question words (``STOP_TH``) are dropped, so "ลืมรหัสผ่านทำไงดีคะ" leaves ลืม, รหัสผ่าน.
- **English** (Latin runs): lower case (from folding), apostrophes dropped, Snowball English
  stemming, the Snowball stop word list plus chat fillers (``STOP_EN``).

Then every term that is a member of a thesaurus group becomes its concept token
(``core.knowledge.thesaurus``); English phrases of up to three words are matched before stop
words are dropped ("log in", "top up"). Pure numbers are dropped (order numbers say nothing of
the topic). Everything here is deterministic and thread-safe after ``warm()``.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

import jieba
import snowballstemmer
from pythainlp.corpus.common import thai_words
from pythainlp.tokenize import word_tokenize
from pythainlp.util import Trie

from core.knowledge.normalize import Script, fold, runs
from core.knowledge.thesaurus import CONCEPTS


def _words(*texts: str) -> frozenset[str]:
    return frozenset(word for text in texts for word in text.split())


STOP_EN: Final = _words(
    # the Snowball project's English stop word list
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves what which who whom this
    that these those am is are was were be been being have has had having do does did doing
    would should could ought im youre hes shes its were theyre ive youve weve theyve id youd hed
    shed wed theyd ill youll hell shell well theyll isnt arent wasnt werent hasnt havent hadnt
    doesnt dont didnt wont wouldnt shant shouldnt cant cannot couldnt mustnt lets thats whos
    whats heres theres whens wheres whys hows a an the and but if or because as until while of at
    by for with about against between into through during before after above below to from up
    down in out on off over under again further then once here there when where why how all any
    both each few more most other some such no nor not only own same so than too very"""
    # chat fillers
    """hi hello hey dear please pls plz thanks thank thx ty u ur can may might will shall want
    wanna need like know tell help get got just ok okay sorry yes yeah also able way""",
)
STOP_ZH: Final = _words(
    """的 地 得 了 着 过 吗 呢 啊 吧 呀 哦 喔 啦 嘛 咯 哈 哇 喇 嘞 啫 㗎 囉 噃 喎 吖 咧 嗱 呵 嗯 噢
    我 你 您 他 她 它 我们 你们 他们 咱们 自己 这 那 这个 那个 这些 那些 这里 那里 这样 那样 是 在
    有 和 与 及 或 或者 就 都 也 还 又 很 太 挺 好 请 请问 想 想要 要 需要 可以 能 能够 可 会 应该
    怎么 怎样 如何 什么 为什么 怎么办 怎么样 怎么做 吗 一下 一个 个 些 一些 给 把 被 让 对 从 向
    跟 到底 其实 已经 不 没 没有 不能 不会 无法 谢谢 多谢 你好 您好 麻烦 帮 帮忙 帮我 问 问题 一
    下 上 里 中 时 啥 嘢 东西 现在 但是 但 如果 因为 所以 然后 还是 知道 搞 弄 办
    有没有 是不是 可不可以"""
)
STOP_TH: Final = _words(
    """ครับ คับ ครัช งับ ฮะ ค่ะ คะ ค่า ค่ะ นะ น่ะ นะคะ นะครับ จ้ะ จ้า จ๊ะ จ๋า เนอะ หรอ เหรอ มั้ย
    ไหม มั๊ย ไม๊ ป่าว เปล่า อ่ะ อะ อ่า เนี่ย น้า ล่ะ ละ สิ ซิ หน่อย ด้วย ที เลย ผม ดิฉัน ฉัน หนู
    เรา คุณ เค้า เขา พี่ น้อง ยังไง อย่างไร ทำไง ไง ทำยังไง ทำอย่างไร อะไร ไหน ทำไม และ กับ หรือ แต่
    ว่า จะ ได้ ให้ ใน ซึ่ง คือ เป็น ก็ แล้ว ถ้า ขอ อยาก ต้องการ สอบถาม รบกวน สวัสดี ขอบคุณ
    ช่วย ได้ไหม ได้มั้ย บ้าง ที่ การ ความ ดี ต้อง ทำ ไม่"""
)
"""Dropped Thai words: politeness particles, pronouns, question words, fillers. pythainlp's own
stop word list is not used: it drops words a help desk needs (เปลี่ยน "change", เปิด "open")."""

_HAN_STOP_CHARS: Final = frozenset(
    "的了吗呢啊吧呀哦喔啦嘛我你您他她它们是在有和与就都也还很请想要可以能会怎么样如何什个一这那些给把被让对从没"
)
"""Characters that back up no Chinese word on their own (``han_chars``)."""


@dataclass(frozen=True, slots=True)
class Term:
    """One index term: a concept token (``~refund``), an English stem, a Chinese or Thai word.
    ``surface`` is the word it came from (for a Chinese word, its characters back it up)."""

    text: str
    script: Script
    surface: str


def _phrases() -> tuple[dict[str, str], dict[tuple[str, ...], str]]:
    words: dict[str, str] = {}
    english: dict[tuple[str, ...], str] = {}
    for concept in CONCEPTS:
        for member in (*concept.zh, *concept.th):
            words[fold(member)] = concept.token
        for member in concept.en:
            stems = tuple(_stem(w) for w in fold(member).replace("-", " ").split())
            english[stems] = concept.token
    return words, english


@functools.lru_cache(maxsize=65_536)
def _stem(word: str) -> str:
    return str(_STEMMER.stemWord(word))


_STEMMER: Final = snowballstemmer.stemmer("english")
_WORDS, _ENGLISH_PHRASES = _phrases()
_LONGEST_PHRASE: Final = max(len(p) for p in _ENGLISH_PHRASES)
_STOP_STEMS: Final = frozenset(_stem(w) for w in STOP_EN) | STOP_EN


class _Segmenters:
    """jieba and newmm with the thesaurus' words, each loaded once on first need (jieba takes
    about a second, newmm's trie more): a query in one script loads that script's only."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jieba: jieba.Tokenizer | None = None
        self._thai: Trie | None = None

    def chinese(self) -> jieba.Tokenizer:
        with self._lock:
            if self._jieba is None:
                jieba.setLogLevel(logging.WARNING)
                tokenizer = jieba.Tokenizer()
                tokenizer.initialize()
                for member in _WORDS:
                    if member and not _is_thai(member[0]):
                        tokenizer.add_word(member, freq=100_000)
                self._jieba = tokenizer
            return self._jieba

    def thai(self) -> Trie:
        with self._lock:
            if self._thai is None:
                words = set(thai_words())
                words.update(m for m in _WORDS if m and _is_thai(m[0]))
                words.update(STOP_TH)
                self._thai = _WordSet(words)
            return self._thai


class _WordSet(Trie):
    """newmm's dictionary as a set: the same ``prefixes`` answers as pythainlp's ``Trie``, which
    takes seconds to build node by node for 60,000 words, where a set takes milliseconds."""

    def __init__(self, words: Iterable[str]) -> None:  # no super(): no nodes to build
        self._words = frozenset(w for w in words if w)
        self._longest = max((len(w) for w in self._words), default=0)

    def prefixes(self, text: str, start: int = 0) -> list[str]:
        end = min(len(text), start + self._longest)
        return [text[start:i] for i in range(start + 1, end + 1) if text[start:i] in self._words]

    def __contains__(self, key: object) -> bool:
        return key in self._words

    def __iter__(self) -> Iterator[str]:
        return iter(self._words)

    def __len__(self) -> int:
        return len(self._words)


def _is_thai(char: str) -> bool:
    return "\u0e00" <= char <= "\u0e7f"


_SEGMENTERS: Final = _Segmenters()


def warm() -> None:
    """Load the dictionaries now rather than on the first call."""
    _SEGMENTERS.chinese()
    _SEGMENTERS.thai()


def _english(words: list[str]) -> list[Term]:
    stems = [_stem(w.replace("'", "").replace("’", "")) for w in words]
    surfaces = [w.replace("'", "").replace("’", "") for w in words]
    out: list[Term] = []
    i = 0
    while i < len(stems):
        for size in range(min(_LONGEST_PHRASE, len(stems) - i), 0, -1):
            concept = _ENGLISH_PHRASES.get(tuple(stems[i : i + size]))
            if concept is not None:
                out.append(Term(concept, Script.LATIN, " ".join(surfaces[i : i + size])))
                i += size
                break
        else:
            stem, surface = stems[i], surfaces[i]
            if surface not in STOP_EN and stem not in _STOP_STEMS and not stem.isdigit():
                out.append(Term(stem, Script.LATIN, surface))
            i += 1
    return out


def _word(text: str, script: Script) -> Term | None:
    concept = _WORDS.get(text)
    if concept is not None:
        return Term(concept, script, text)
    stop = STOP_ZH if script is Script.HAN else STOP_TH
    if text in stop or not text.strip() or text.isdigit():
        return None
    return Term(text, script, text)


def analyze(text: str, *, query: bool = False) -> list[Term]:
    """The terms of ``text`` in order (see the module docstring); ``query`` cuts Chinese in
    precise mode, articles in search mode."""
    out: list[Term] = []
    latin: list[str] = []
    for run in runs(fold(text)):
        if run.script is Script.LATIN:
            latin.append(run.text)
            continue
        out.extend(_english(latin))
        latin = []
        if run.script is Script.HAN:
            tokenizer = _SEGMENTERS.chinese()
            cut = tokenizer.lcut(run.text) if query else tokenizer.lcut_for_search(run.text)
            words = [str(w) for w in cut]
        else:
            thai = _SEGMENTERS.thai()
            words = [str(w) for w in word_tokenize(run.text, custom_dict=thai, engine="newmm")]
        for word in words:
            term = _word(word, run.script)
            if term is not None:
                out.append(term)
    out.extend(_english(latin))
    return out


def han_chars(text: str) -> list[str]:
    """The Han characters of a (folded) word or text that may back up a word, in order."""
    return [ch for ch in text if "\u3400" <= ch <= "\U0002ffff" and ch not in _HAN_STOP_CHARS]


def subwords(word: str) -> list[Term]:
    """The shorter words jieba's search mode finds inside a (folded) Chinese word, as terms,
    without the word itself: 送货地址 -> ~delivery, ~address."""
    out = []
    for part in _SEGMENTERS.chinese().lcut_for_search(word):
        text = str(part)
        if text == word or len(text) < 2:
            continue
        term = _word(text, Script.HAN)
        if term is not None:
            out.append(term)
    return out


@functools.cache
def member_lexicon() -> dict[str, frozenset[str]]:
    """English stems and Thai words of the thesaurus' one-word members -> their concept token:
    where a misspelt member is found ("refnud" -> ~refund)."""
    found: dict[str, set[str]] = {}
    for concept in CONCEPTS:
        for member in concept.en:
            words = fold(member).replace("-", " ").split()
            if len(words) == 1 and len(words[0]) >= 3:
                found.setdefault(_stem(words[0]), set()).add(concept.token)
        for member in concept.th:
            found.setdefault(fold(member), set()).add(concept.token)
    return {k: frozenset(v) for k, v in found.items()}


def thai_pieces(text: str) -> list[list[str]]:
    """The raw newmm pieces of each Thai run of ``text`` (folded here), stop words included:
    where the ranking re-joins the pieces of a misspelt word (เติมเงน -> เติม, เงน)."""
    return [
        [str(w) for w in word_tokenize(run.text, custom_dict=_SEGMENTERS.thai(), engine="newmm")]
        for run in runs(fold(text))
        if run.script is Script.THAI
    ]


def is_stop(piece: str) -> bool:
    """Whether a raw piece is a stop word (of any language)."""
    return piece in STOP_TH or piece in STOP_ZH or piece in STOP_EN
