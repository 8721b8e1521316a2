"""What a student means when no exact word matched: a scam warning first, a person when asked for, then the
handlers' intents and the school's FAQ ranked together by meaning (jieba segmentation + BM25), typos forgiven
(rapidfuzz).

Everything is loaded, segmented and indexed once per process and FAQ file (``understanding_for``); reading one
message is a few dictionary look-ups and one BM25 pass over a few dozen documents (well under a millisecond).
"""

from __future__ import annotations

import logging
import re
import tomllib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

import jieba
import numpy as np
from rank_bm25 import BM25Okapi
from rapidfuzz import fuzz, process

DEFAULT_FAQ = Path(__file__).resolve().parent.parent / "texts" / "faq.toml"

# Scams the school warns of (代充, discounted top-ups, 刷单, codes and passwords asked for): checked before anything else.
SCAM = re.compile(
    r"代充|帮(?:你|您|人|别人)充|优惠充值|充值优惠|打折充值|充值打折|折扣充值|[一二三四五六七八九\d]\s*折|刷单|返利|验证码|支付密码|"
    r"verification code|verify code|sms code|\bcode\b.*\bsent\b|payment password|pay password|pin code|"
    r"discount(ed)? top.?up|cheap(er)? top.?up|top.?up (for|at a) discount|percent off|\d+ ?% off|brushing orders"
)
HUMAN = re.compile(r"人工|真人|客服|\b(?:human|real person|agent|customer service|operator|talk to (?:a|some) ?one|staff member)\b")
# Polite wrappers and filler that do not change what is asked.
_LEAD = re.compile(
    r"^(?:(?:请问一下|请问|请|麻烦你?|帮我|帮忙|你好|您好|哈喽|嗨|老师|同学|我想问一下|我想问|想问一下|想问|问一下|我想|我要|"
    r"please|pls|plz|hi|hello|hey|excuse me|sorry|can you|could you|can i|could i|i want to|i'd like to|i would like to|"
    r"tell me|help me|help)\s*)+"
)
_TAIL = re.compile(r"(?:\s*(?:谢谢你?|谢啦|多谢|thanks|thank you|thx|please|pls|plz|吗|呢|呀|啊|吧|哦|嘛|啦))+$")
_STOPWORDS = (
    "的 了 吗 呢 吧 啊 呀 哦 嘛 啦 我 我的 你 您 是 在 有 都 也 就 还 和 跟 要 想 请 请问 一下 下 这 那 个 怎么办 "
    "a an the i me my is are am was be to of in on at for it this that do does did can could would will "
    "please pls plz what how why when where which you your with and or so just there"
)
_STOP = frozenset(_STOPWORDS.split())
_FUZZY_WORD = 85  # rapidfuzz ratio for a whole short message against a known phrase (one typo in a word)
_FUZZY_TOKEN = 80  # ... for an unknown English word against the index's words
CONFIDENT = 4.0  # BM25 score of the best document for an answer ...
MARGIN = 1.35  # ... and how far ahead of the next it must be; else a close call
CLOSE = 2.0  # below this nothing is offered: the fallback


class Kind(StrEnum):
    ROUTE = "route"  # run the menu action ``key``
    ANSWER = "answer"  # one FAQ entry
    CHOICES = "choices"  # a close call: two or three entries to pick from
    SCAM = "scam"
    HUMAN = "human"
    NONE = "none"


@dataclass(frozen=True)
class Entry:
    """One FAQ entry: a title per language (offered in choices, answered when replied) and an answer per language."""

    id: str
    title: Mapping[str, str]
    answer: Mapping[str, str]


@dataclass(frozen=True)
class Meaning:
    kind: Kind
    key: str = ""
    entries: tuple[Entry, ...] = ()


@dataclass(frozen=True)
class _Doc:
    key: str  # a click key (an intent) or ""
    entry: Entry | None


def clean(text: str) -> str:
    """NFKC, case-folded; punctuation, symbols and emoji become spaces; spaces squeezed."""
    text = unicodedata.normalize("NFKC", text or "").casefold()
    kept = "".join(ch if unicodedata.category(ch)[0] in "LN" or ch == "'" else " " for ch in text)
    return " ".join(kept.split())


def strip_wrappers(text: str) -> str:
    """``clean`` text without polite wrappers (请问, 帮我, please, 谢谢); the text itself when nothing else is left."""
    core = _TAIL.sub("", _LEAD.sub("", text)).strip()
    return core or text


@lru_cache(maxsize=1)
def _tokenizer() -> jieba.Tokenizer:
    """jieba's dictionary, loaded once per process (it takes a second or so)."""
    jieba.setLogLevel(logging.WARNING)
    tok = jieba.Tokenizer()
    tok.initialize()
    return tok


class Understanding:
    """The index of one FAQ file plus the handlers' words, read once."""

    def __init__(self, faq: Mapping[str, object], words: Mapping[str, Sequence[str]]) -> None:
        self._tok = _tokenizer()
        self._exact: dict[str, _Doc] = {}
        docs: list[_Doc] = []
        corpus: list[list[str]] = []
        intents = faq.get("intents", {})
        assert isinstance(intents, dict)
        self._titles: dict[str, Entry] = {}
        for key in sorted(set(words) | set(intents)):
            phrases = [*words.get(key, ()), *(p for lang in ("zh", "en") for p in intents.get(key, {}).get(lang, []))]
            self._add(_Doc(key, None), phrases, docs, corpus)
            zh = next((p for p in phrases if not p.isascii()), key)
            en = next((p for p in phrases if p.isascii()), zh)
            self._titles[key] = Entry(id=f"intent:{key}", title={"zh": zh, "en": en}, answer={})
        entries = faq.get("faq", [])
        assert isinstance(entries, list)
        for raw in entries:
            entry = Entry(id=raw["id"], title=dict(raw["title"]), answer=dict(raw["a"]))
            phrases = [*entry.title.values(), *(p for lang in ("zh", "en") for p in raw["q"].get(lang, []))]
            self._add(_Doc("", entry), phrases, docs, corpus)
        self._docs = docs
        self._weights = _term_weights(BM25Okapi(corpus))
        self._vocab = sorted(w for w in self._weights if w.isascii() and len(w) > 3)
        self._phrases = list(self._exact)

    def _add(self, doc: _Doc, phrases: Sequence[str], docs: list[_Doc], corpus: list[list[str]]) -> None:
        tokens: list[str] = []
        for phrase in phrases:
            text = clean(phrase)
            self._exact.setdefault(text, doc)
            self._exact.setdefault(strip_wrappers(text), doc)
            tokens.extend(self.tokens(text))
        docs.append(doc)
        corpus.append(tokens)

    def tokens(self, text: str) -> list[str]:
        """jieba's search-mode words (a compound and its parts) without stop words."""
        return [w for w in self._tok.lcut_for_search(text) if w.strip() and w not in _STOP]

    def _query(self, text: str) -> list[str]:
        """The message's tokens; an unknown English word is read as the nearest indexed one (a typo)."""
        out = []
        for w in self.tokens(text):
            if w.isascii() and len(w) > 3 and w not in self._weights:
                near = process.extractOne(w, self._vocab, scorer=fuzz.ratio, score_cutoff=_FUZZY_TOKEN)
                if near is not None:
                    w = near[0]
            out.append(w)
        return out

    def read(self, message: str) -> Meaning:
        text = clean(message)
        if not text:
            return Meaning(Kind.NONE)
        if SCAM.search(text):
            return Meaning(Kind.SCAM)
        if HUMAN.search(text):
            return Meaning(Kind.HUMAN)
        core = strip_wrappers(text)
        doc = self._exact.get(core) or self._exact.get(text)
        if doc is None and len(core) >= 4:
            near = process.extractOne(core, self._phrases, scorer=fuzz.ratio, score_cutoff=_FUZZY_WORD)
            doc = self._exact[near[0]] if near is not None else None
        if doc is not None:
            return self._meaning(doc)
        return self.rank(core)

    def rank(self, text: str) -> Meaning:
        """BM25 over every intent and entry: a clear winner, a close call between two or three, or nothing."""
        query = self._query(text)
        if not query:
            return Meaning(Kind.NONE)
        scores = sum((self._weights[w] for w in query if w in self._weights), np.zeros(len(self._docs)))
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        best = scores[order[0]]
        if best < CLOSE:
            return Meaning(Kind.NONE)
        runner_up = scores[order[1]]
        if best >= CONFIDENT and best >= MARGIN * runner_up:
            return self._meaning(self._docs[order[0]])
        close = [self._docs[i] for i in order[:3] if scores[i] >= best / MARGIN and scores[i] >= CLOSE]
        if len(close) == 1:
            return self._meaning(close[0])
        return Meaning(Kind.CHOICES, entries=tuple(d.entry or self._titles[d.key] for d in close))

    @staticmethod
    def _meaning(doc: _Doc) -> Meaning:
        if doc.entry is None:
            return Meaning(Kind.ROUTE, key=doc.key)
        return Meaning(Kind.ANSWER, entries=(doc.entry,))


def _term_weights(bm25: BM25Okapi) -> dict[str, np.ndarray]:
    """Each indexed word's BM25 score in every document (``BM25Okapi.get_scores`` term by term, computed once):
    a message's scores are then the sum of its words' rows."""
    norm = bm25.k1 * (1 - bm25.b + bm25.b * np.asarray(bm25.doc_len, dtype=float) / bm25.avgdl)
    weights = {}
    for term, idf in bm25.idf.items():
        tf = np.array([doc.get(term, 0) for doc in bm25.doc_freqs], dtype=float)
        weights[term] = idf * tf * (bm25.k1 + 1) / (tf + norm)
    return weights


def load_faq(path: Path) -> dict[str, object]:
    """The FAQ file, refused with every problem named (``path: faq[3] 'refund': no a.en``) so a bad edit stops the
    start instead of the first question."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    problems = []
    for key, intent in data.get("intents", {}).items():
        if not isinstance(intent, dict) or set(intent) - {"zh", "en"} or not all(isinstance(v, list) for v in intent.values()):
            problems.append(f"intents.{key}: expected zh = [...] and en = [...]")
    seen: set[str] = set()
    for i, entry in enumerate(data.get("faq", []), 1):
        where = f"faq[{i}] {entry.get('id')!r}"
        if not entry.get("id") or entry["id"] in seen:
            problems.append(f"{where}: id missing or used twice")
        seen.add(entry.get("id", ""))
        for part in ("title", "q", "a"):
            for lang in ("zh", "en"):
                if not (entry.get(part) or {}).get(lang):
                    problems.append(f"{where}: no {part}.{lang}")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems))
    return data


@lru_cache(maxsize=4)
def understanding_for(path: str, words: tuple[tuple[str, tuple[str, ...]], ...]) -> Understanding:
    """One index per process, FAQ file and set of handler words: apps built in the same process share it."""
    return Understanding(load_faq(Path(path)), dict(words))
