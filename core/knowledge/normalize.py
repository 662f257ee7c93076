"""Text folding before segmentation: one canonical form for what customers write many ways.

``fold(text)`` is applied to articles and queries alike, so both meet in the same form:

1. Unicode NFKC (full-width Latin and digits to ASCII, compatibility ideographs to their
   unified forms) and case folding; Thai SARA AM, which NFKC splits in two, is put back.
2. Cantonese written colloquially to standard written Chinese (``CANTONESE``: 點樣 -> 怎样,
   冇 -> 没有, 唔 -> 不, 咩 -> 什么...), so that "refund 點搞" or "點樣改地址" reach articles
   written in standard Chinese. Applied on the Simplified form (step 3), longest key first.
3. Traditional to Simplified with OpenCC: ``tw2sp`` (Taiwan phrases such as 軟體 -> 软件,
   登入 -> 登录) then ``hk2s`` (Hong Kong variant characters such as 衞 -> 卫). A zh-Hans query
   therefore meets a zh-Hant article, and the reverse, on the same tokens.

``runs(text)`` then cuts folded text into script runs (Han, Thai, Latin and digits), each
segmented its own way by ``core.knowledge.segment``.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import opencc

CANTONESE: Final[dict[str, str]] = {
    # question words and phrases
    "点样": "怎样",
    "点搞": "怎么办",
    "点算": "怎么办",
    "点做": "怎么做",
    "点解": "为什么",
    "做咩": "为什么",
    "乜嘢": "什么",
    "咩嘢": "什么",
    "咩": "什么",
    "边度": "哪里",
    "边到": "哪里",
    "边个": "谁",
    "边间": "哪间",
    "几时": "什么时候",
    "几耐": "多久",
    "几多钱": "多少钱",
    "几钱": "多少钱",
    "几多": "多少",
    # negation, existence, aspect, pronouns, particles
    "冇": "没有",
    "唔该": "",
    "唔识": "不会",
    "唔": "不",
    "咗": "了",
    "嘅": "的",
    "啲": "些",
    "佢哋": "他们",
    "你哋": "你们",
    "我哋": "我们",
    "佢": "他",
    "哋": "们",
    "喺": "在",
    "呢个": "这个",
    "呢度": "这里",
    "呢排": "最近",
    "嗰个": "那个",
    "嗰": "那",
    "咁": "这样",
    "而家": "现在",
    "今日": "今天",
    "听日": "明天",
    "琴日": "昨天",
    "寻日": "昨天",
    "嘢": "东西",
    "啱": "对",
    "嚟": "来",
    # verbs
    "睇": "看",
    "搵": "找",
    "揾": "找",
    "攞": "拿",
    "俾": "给",
    "畀": "给",
    "谂": "想",
    # commerce (Hong Kong usage)
    "落单": "下单",
    "张单": "订单",
    "埋单": "结账",
    "入数": "付款",
    "过数": "转账",
    "碌卡": "刷卡",
    "退钱": "退款",
    "唔见咗": "遗失",
    "唔见": "遗失",
    "冇咗": "遗失",
    "记唔起": "忘记",
    "唔记得": "忘记",
    "咭": "卡",
}
"""Cantonese colloquialisms (keys in Simplified, as after OpenCC) and what standard written
Chinese says instead; an empty value drops the word (唔該: "please"). Kept small and common:
words customers type in chat, not a dictionary of the language."""

_COPULA: Final = re.compile(r"(?<![關关聯联維维])係")
"""Cantonese 係 ("is") before folding: after OpenCC it would be 系 ("system", "series")."""


class Script(StrEnum):
    HAN = "han"
    THAI = "thai"
    LATIN = "latin"


@dataclass(frozen=True, slots=True)
class Run:
    """A stretch of folded text in one script."""

    script: Script
    text: str


_RUNS: Final = re.compile(
    r"(?P<han>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+)"
    r"|(?P<thai>[\u0e00-\u0e7f]+)"
    r"|(?P<latin>[0-9a-z\u00c0-\u024f]+(?:['’][a-z]+)*)"
)

_LOCK = threading.Lock()
_CONVERTERS: list[opencc.OpenCC] = []


def _converters() -> list[opencc.OpenCC]:
    with _LOCK:
        if not _CONVERTERS:
            _CONVERTERS.extend([opencc.OpenCC("tw2sp"), opencc.OpenCC("hk2s")])
        return _CONVERTERS


def _cantonese_pattern() -> re.Pattern[str]:
    keys = sorted(CANTONESE, key=len, reverse=True)
    return re.compile("|".join(re.escape(k) for k in keys))


_CANTONESE_RE: Final = _cantonese_pattern()


def to_simplified(text: str) -> str:
    """``text`` with Traditional Chinese (Taiwan and Hong Kong usage) in Simplified."""
    for converter in _converters():
        text = converter.convert(text)
    return text


def fold(text: str) -> str:
    """The canonical form of ``text`` (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).casefold().replace("\u0e4d\u0e32", "\u0e33")
    text = _COPULA.sub("是", text)
    text = to_simplified(text)
    return _CANTONESE_RE.sub(lambda m: CANTONESE[m.group(0)], text)


def runs(folded: str) -> Iterator[Run]:
    """The script runs of folded text, in order; punctuation and other scripts are dropped."""
    for match in _RUNS.finditer(folded):
        kind = match.lastgroup
        yield Run(Script(kind), match.group(0)) if kind else Run(Script.LATIN, "")


def script_of(folded: str) -> Script | None:
    """The query's main script: Han if any Han (Cantonese mixed with English is Chinese), else
    Thai if any Thai, else Latin if any letters; None for an empty text."""
    seen = {run.script for run in runs(folded)}
    for script in (Script.HAN, Script.THAI, Script.LATIN):
        if script in seen:
            return script
    return None
