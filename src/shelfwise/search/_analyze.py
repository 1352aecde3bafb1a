"""Text analysis shared by indexing and querying: one analyzer, so both sides agree.

English (and other Latin-script) words are lower-cased, NFKC-normalized and Snowball-stemmed
(PyStemmer); runs of CJK characters are segmented with jieba's dictionary. Units glued to numbers
(`12in`, `3.5oz`) are split so `12 in` and `12in` meet.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_HAN = "\u4e00-\u9fff\u3400-\u4dbf"  # CJK unified ideographs and extension A
_TOKEN = re.compile(f"[{_HAN}]+|[^\\W_]+", re.UNICODE)
_CJK = re.compile(f"[{_HAN}]")
# ideographs with CJK punctuation and full-width forms: what an English encoder cannot read
_CJK_RUN = re.compile(f"[{_HAN}\u3000-\u303f\uff00-\uffef]+")
_NUM_UNIT = re.compile(r"^(\d+(?:\.\d+)?)([a-z]+)$")
MAX_QUERY_CHARS = 512
# English function words (not "can", "us", "off", "no", "up", "out", "plus": a trash can, a US
# plug, off-white, no-show, plus size are products)
STOP_WORDS = (
    "a an the and or nor of for with without in on at by to from into onto over under about as "
    "is are was were be been it its this that these those my your our their his her i you we they "
    "me them not do does will so if but than then all any some very how what which who where "
    "when why"
)


@lru_cache(maxsize=1)
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def _jieba():
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def load_segmenter() -> None:
    """Load jieba's dictionary now (~50 MiB, seconds) rather than on the first Chinese text: for
    an engine whose catalog has Chinese text, loaded before a server forks its workers."""
    _jieba()


def words(text: str) -> list[str]:
    """Lower-cased surface words (no stemming): for spelling correction and autocomplete."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    out: list[str] = []
    for tok in _TOKEN.findall(text):
        if _CJK.match(tok):
            out.extend(w for w in _jieba().lcut(tok) if w.strip())
            continue
        m = _NUM_UNIT.match(tok)
        out.extend([m.group(1), m.group(2)] if m else [tok])
    return out


def analyze(text: str) -> list[str]:
    """Index/query terms: `words` with Latin words stemmed."""
    ws = words(text)
    stem = _stemmer().stemWords
    latin = [i for i, w in enumerate(ws) if not _CJK.match(w)]
    stemmed = stem([ws[i] for i in latin])
    for i, s in zip(latin, stemmed, strict=True):
        ws[i] = s
    return ws


def analyzed(text: str) -> str:
    return " ".join(analyze(text))


def contains_cjk(text: str) -> bool:
    """Whether a text has any Chinese character."""
    return bool(text) and _CJK.search(text) is not None


def without_cjk(text: str) -> str:
    """The text an English encoder can read: Chinese characters (and their punctuation) removed,
    the rest (brand, model numbers, an English category path) kept; the text itself when nothing
    would be left."""
    if not contains_cjk(text):
        return text
    parts = [" ".join(_CJK_RUN.sub(" ", p).split()).strip(" -/,.;:") for p in text.split("|")]
    kept = " | ".join(p for p in parts if p)
    return kept or text


def has_cjk(texts: list[str], share: float = 0.01, at_least: int = 20) -> bool:
    """Whether a catalog has enough Chinese text to need the multilingual encoder."""
    hits = sum(1 for t in texts if contains_cjk(t))
    return hits >= at_least or (bool(texts) and hits / len(texts) >= share and hits > 0)
