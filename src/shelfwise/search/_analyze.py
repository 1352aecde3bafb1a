"""Text analysis shared by indexing and querying: one analyzer, so both sides agree.

English (and other Latin-script) words are lower-cased, NFKC-normalized and Snowball-stemmed
(PyStemmer); runs of CJK characters are segmented with jieba's dictionary. Units glued to numbers
(`12in`, `3.5oz`) are split so `12 in` and `12in` meet.

`analyze` is the English analysis; `Analyzer` is a shop's (its language detected from the
catalog or set, see `Analyzer.for_catalog`): English as `analyze`, other languages with their
Snowball stemmer, accents folded, stopwords left out and (German) compounds split into catalog
words. The engine keeps its analyzer with the keyword index (`Analyzer.save` / `load`).
"""

from __future__ import annotations

import re
import unicodedata
from collections import OrderedDict
from functools import cache, lru_cache
from pathlib import Path

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


# -- languages other than English -----------------------------------------------------------
# A shop's catalog language picks the Snowball stemmer, the stopwords left out of the keyword
# index and queries, accent folding and (German) decompounding. English keeps `analyze` as it
# is (stopwords indexed, accents kept): its results must not move.
LANGUAGES = ("english", "german", "french", "spanish", "italian", "dutch")
# short forms a setting may use
LANGUAGE_CODES = {
    "en": "english",
    "de": "german",
    "fr": "french",
    "es": "spanish",
    "it": "italian",
    "nl": "dutch",
}
# function words, folded (no accents): words that say nothing of a product
_STOP = {
    "english": STOP_WORDS,
    "german": (
        "der die das den dem des ein eine einer eines einem einen und oder aber mit fur von "
        "vom zu zum zur im in ins am an auf aus bei fuer uber unter nach vor ist sind war waren "
        "wird werden hat haben sein ihr ihre sie er es wir ich du auch als wie so sehr noch "
        "nur dass wenn dieser diese dieses jeder jede alle sich man mehr bis durch gegen um"
    ),
    "french": (
        "le la les l un une des du de d au aux et ou mais avec pour par en dans sur sous "
        "ce cet cette ces son sa ses leur leurs mon ma mes ton ta tes qui que quoi dont est sont "
        "etre a ont il elle ils elles nous vous je tu plus tres se y c s n qu j m t"
    ),
    "spanish": (
        "el la los las un una unos unas y o pero con para por de del al en sobre bajo es son "
        "que se su sus lo le les muy mas como este esta estos estas ese esa mi tu"
    ),
    "italian": (
        "il lo la i gli le un uno una e o ma con per da di del della dei delle al alla "
        "in su nel nella che si sono e' piu molto come questo questa suo sua l d"
    ),
    "dutch": (
        "de het een en of maar met voor van aan in op uit bij naar om te tot is zijn was "
        "waren wordt die dat dit deze ook als zo zeer nog ze hij zij wij ik je u"
    ),
}
# negations, folded: no stopwords ("ohne Zucker" is sugar-free, "sans gluten" gluten-free: a
# query's "ohne" must not be dropped to "zucker"); they stay terms of the index and of queries.
# English keeps its analysis (its stopwords, "without" and "not" among them, are indexed as ever)
NEGATIONS = {
    "english": frozenset(),
    "german": frozenset(["ohne", "nicht", "kein", "keine", "keinen", "keinem", "keiner", "keines"]),
    "french": frozenset(["sans", "pas", "ne", "non", "aucun", "aucune"]),
    "spanish": frozenset(["sin", "no", "ni", "ningun", "ninguna"]),
    "italian": frozenset(["senza", "non", "nessun", "nessuna"]),
    "dutch": frozenset(["zonder", "niet", "geen"]),
}
# language evidence beyond the stopwords: negations found in no English text ("non", "no": an
# English "non-slip" mat, a "no-show" sock, say nothing of French, Spanish or Italian)
_EVIDENCE_EXTRA = {lang: negs - {"non", "no", "ne", "ni"} for lang, negs in NEGATIONS.items()}
_FOLD_EXTRA = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "đ": "d", "ł": "l"})
# German decompounding: a part is at least this long (shorter ones, "tee", "ski", "eis", would
# split many words by chance) and a word is split only when every part is a catalog word
MIN_PART = 4
# ... and only a word of at most this many letters is split: German product compounds run to 20-30
# letters ("Kompressionsstrümpfe" 20, "Fahrradtrinkflaschenhalter" 26); a longer unspaced run (a
# URL, a model code, a pasted string, 500 letters in a query) is no compound, and the cap bounds a
# split's work (about MAX_COMPOUND**2 / 2 substrings looked up, each at most once)
MAX_COMPOUND = 40
# words whose split a shop's analyzer keeps (least recently used dropped first): queries bring
# words without end, a long-running server must not keep them all
PARTS_CACHED = 50_000
DECOMPOUNDED = frozenset({"german"})


def fold(word: str) -> str:
    """A word without its accents: "randonnée" -> "randonnee", "größe" -> "grosse"."""
    word = word.translate(_FOLD_EXTRA)
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def language_name(value: str | None) -> str | None:
    """A setting's language as the analyzer names it ("de", "German" -> "german"); None for
    auto-detection (None, "", "auto"). Raises ValueError for a language it does not know."""
    if value is None or not str(value).strip() or str(value).strip().lower() == "auto":
        return None
    v = str(value).strip().lower()
    v = LANGUAGE_CODES.get(v, v)
    if v not in LANGUAGES:
        raise ValueError(
            f"search language {value!r}: one of auto, {', '.join(LANGUAGES)} (or {', '.join(LANGUAGE_CODES)})"
        )
    return v


@cache
def _stemmer_for(language: str):
    import Stemmer

    return Stemmer.Stemmer(language)


@cache
def stopwords(language: str) -> frozenset[str]:
    """The language's function words, folded (English: as typed)."""
    return frozenset(_STOP[language].split()) - NEGATIONS[language]


@cache
def _evidence(language: str) -> frozenset[str]:
    """The words that tell a text is in `language` (see `detect_language`)."""
    return stopwords(language) | _EVIDENCE_EXTRA[language]


# letters of a language's own words (a word with one is no English word)
_LETTERS = {
    "english": "",
    "german": "äöüß",
    "french": "éèêëàâçîïôûùœÿ",
    "spanish": "ñáéíóúü",
    "italian": "àèéìíòóù",
    "dutch": "ëïéèáóú",
}
# the evidence a language other than English needs besides its function words' count: at least
# KINDS different function words (a text in the language uses several: "und", "mit", "für"; a
# foreign name one or two, over and over: "Côtes du Rhône", "Aceto Balsamico di Modena") or, with
# fewer, its own letters in at least LETTER_SHARE of the words (a titles-only German shop says
# "für" in one phrase only, but "grün", "weiß" and "Zubehör" throughout)
KINDS = 2.0
LETTER_SHARE = 0.02


def detect_language(texts: list[str], sample: int = 5000) -> tuple[str, str]:
    """(language, why) of a catalog's text: how many of its words (of two letters or more) are
    each language's function words ("und", "pour", "the"...), a word shared by several languages
    ("de": French, Spanish, Dutch) counting a part to each, over `sample` texts spread over
    `texts`. English unless another language has at least 5 such words, at least twice English's
    score and more than any other's, and either KINDS different ones (each shared word a part)
    or its own letters ("ü", "é") in LETTER_SHARE of the words: a catalog with no function words
    at all, whose only ones are shared alike, or whose only ones come from a few foreign names
    in English text ("Cotes du Rhone Red Wine"), stays English (set the language then)."""
    score = dict.fromkeys(LANGUAGES, 0.0)
    kinds = dict.fromkeys(LANGUAGES, 0.0)
    lettered = dict.fromkeys(LANGUAGES, 0)
    seen: set[str] = set()
    total = 0
    sets = {lang: _evidence(lang) for lang in LANGUAGES}
    step = max(1, len(texts) // max(sample, 1))
    for t in texts[::step][:sample]:
        for w in words(t):
            if _CJK.match(w) or len(w) < 2 or not w.isalpha():
                continue  # (French "l'", "d'" and "30 L" alike: a letter says nothing)
            total += 1
            f = fold(w)
            if f != w:
                for lang in LANGUAGES[1:]:
                    if any(ch in _LETTERS[lang] for ch in w):
                        lettered[lang] += 1
            langs = [lang for lang, s in sets.items() if (w if lang == "english" else f) in s]
            for lang in langs:
                score[lang] += 1.0 / len(langs)
                if f not in seen:
                    kinds[lang] += 1.0 / len(langs)
            if langs:
                seen.add(f)
    if total == 0:
        return "english", "no words in the catalog's text: English"
    ranked = sorted(LANGUAGES[1:], key=lambda lang: (-score[lang], LANGUAGES.index(lang)))
    best, second = ranked[0], ranked[1]
    shares = ", ".join(f"{lang} {score[lang] / total:.1%}" for lang in ("english", *ranked[:3]))
    if score[best] >= 5 and score[best] >= 2 * score["english"] and score[best] > score[second]:
        if kinds[best] >= KINDS or lettered[best] >= LETTER_SHARE * total:
            return best, f"detected from the catalog's text (function words among {total:,} words: {shares})"
        return (
            "english",
            f"English ({best}'s function words among {total:,} words ({shares}) are few different"
            f" ones ({kinds[best]:.1f}) with few {best} letters ({lettered[best] / total:.1%} of the"
            " words): foreign names, likely; set the language if the shop is not English)",
        )
    return (
        "english",
        f"English (no other language's function words stand out among {total:,} words: {shares})",
    )


class Analyzer:
    """The analysis of one shop's text (index and queries alike): `language` picks the Snowball
    stemmer; other than English, words are accent-folded, the language's stopwords left out (a
    text of only stopwords keeps them, so such a query still reaches the encoders' and the
    speller's path rather than nothing) and, for German, compounds also indexed as their parts
    when every part is a word of the catalog's `vocabulary` (see `for_catalog`)."""

    def __init__(
        self, language: str = "english", vocabulary: frozenset[str] | set[str] = frozenset(), why: str = ""
    ):
        self.language = language
        self.why = why
        self.vocabulary = frozenset(vocabulary)
        self._stems = frozenset(self._stem(w) for w in self.vocabulary) if self.vocabulary else frozenset()
        self._parts: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self.parts_cached = PARTS_CACHED

    def __repr__(self) -> str:
        return f"Analyzer({self.language!r}, {len(self.vocabulary)} words)"

    @classmethod
    def for_catalog(cls, texts: list[str], language: str | None = None) -> Analyzer:
        """The analyzer of a catalog whose text is `texts`: `language` when given (a setting),
        else detected (`detect_language`); German with the catalog's words for decompounding."""
        name = language_name(language)
        if name is None:
            name, why = detect_language(texts)
        else:
            why = f"set by configuration ({language})"
        vocab: set[str] = set()
        if name in DECOMPOUNDED:
            stop = stopwords(name) | NEGATIONS[name]
            for t in texts:
                for w in words(t):
                    f = fold(w)
                    if len(f) >= MIN_PART and f.isalpha() and f not in stop:
                        vocab.add(f)
            vocab |= cls(name, vocab).modifiers()
        return cls(name, vocab, why)

    def modifiers(self, at_least: int = 2) -> set[str]:
        """First parts that are no catalog word alone but begin catalog words whose rest is one,
        with `at_least` different rests ("wander": wander|rucksack, wander|socken): German's modifiers are often
        verb stems and prefixes that never stand alone in a product title."""
        seen: dict[str, set[str]] = {}
        for w in self.vocabulary:
            for i in range(MIN_PART, len(w) - MIN_PART + 1):
                head, tail = w[:i], w[i:]
                if head in self.vocabulary:
                    continue
                for rest in (tail, tail[1:]) if tail.startswith("s") else (tail,):
                    if self._known(rest):  # (counted by the rest's stem: rucksack, rucksacke: one)
                        seen.setdefault(head, set()).add(self._stem(rest))
        return {m for m, ws in seen.items() if len(ws) >= at_least}

    def _stem(self, word: str) -> str:
        return str(_stemmer_for(self.language).stemWord(word))

    def split(self, word: str) -> tuple[str, ...]:
        """A folded word's compound parts (every part a catalog word, or a form of one, at least
        MIN_PART long, a linking "s" between two allowed: "arbeitsschuhe" -> arbeit, schuhe),
        the split into the fewest parts, and each part's own parts after it; () when no split
        (and for a word longer than MAX_COMPOUND). The last PARTS_CACHED words' splits are kept."""
        if len(word) > MAX_COMPOUND or len(word) < 2 * MIN_PART:
            return ()
        hit = self._parts.get(word)
        if hit is not None:
            try:
                self._parts.move_to_end(word)
            except KeyError:  # (dropped meanwhile by another thread)
                pass
            return hit
        best = self._split(word) or ()
        out: list[str] = []
        for p in best:
            out.append(p)
            if len(p) >= 2 * MIN_PART:
                out.extend(self.split(p))
        parts = tuple(out)
        self._parts[word] = parts
        while len(self._parts) > self.parts_cached:
            try:
                self._parts.popitem(last=False)
            except KeyError:
                break
        return parts

    def _known(self, part: str) -> bool:
        return len(part) >= MIN_PART and (part in self.vocabulary or self._stem(part) in self._stems)

    def _split(self, word: str) -> tuple[str, ...] | None:
        """The fewest-parts split of `word` into two parts or more (None when there is none): over
        the positions where a part may begin, each suffix's best split worked out once (the
        search before tried every split point again below every other one: exponential), each
        substring looked up once; ties go, as before, to the shortest first part, a tail before
        its Fugen-s form."""
        n = len(word)
        known: dict[tuple[int, int], bool] = {}

        def is_known(i: int, j: int) -> bool:
            k = known.get((i, j))
            if k is None:
                k = known[(i, j)] = self._known(word[i:j])
            return k

        # rest[i]: the fewest-parts split of word[i:] with that whole suffix allowed as one part
        rest: dict[int, tuple[str, ...] | None] = {}

        def best_from(start: int, whole: bool) -> tuple[str, ...] | None:
            if whole and start in rest:
                return rest[start]
            if whole and is_known(start, n):
                rest[start] = (word[start:],)
                return rest[start]
            best: tuple[str, ...] | None = None
            for i in range(start + MIN_PART, n - MIN_PART + 1):
                if not is_known(start, i):
                    continue
                nexts = [i]
                if word[i] == "s" and n - i > MIN_PART:
                    nexts.append(i + 1)  # Fugen-s: "arbeits|schuhe"
                for j in nexts:
                    sub = best_from(j, True)
                    if sub is not None and (best is None or 1 + len(sub) < len(best)):
                        best = (word[start:i], *sub)
            if whole:
                rest[start] = best
            return best

        return best_from(0, False)

    def analyze(self, text: str) -> list[str]:
        if self.language == "english":
            return analyze(text)
        stop = stopwords(self.language)
        out: list[str] = []
        dropped: list[str] = []
        for w in words(text):
            if _CJK.match(w):
                out.append(w)
                continue
            f = fold(w)
            if f in stop:
                dropped.append(self._stem(f))
                continue
            out.append(self._stem(f))
            if self.vocabulary and len(f) >= 2 * MIN_PART and f.isalpha():
                out.extend(self._stem(p) for p in self.split(f))
        return out if out else dropped

    def analyzed(self, text: str) -> str:
        return " ".join(self.analyze(text))

    def stop_terms(self) -> frozenset[str]:
        """Function words as this analyzer writes them (English: stemmed, as indexed)."""
        if self.language == "english":
            return frozenset(analyze(STOP_WORDS))
        return frozenset(self._stem(w) for w in stopwords(self.language))

    # -- persistence (beside the keyword index: a query is analyzed as its index was) -------
    FILE = "analyzer.json"

    def save(self, folder: str | Path) -> None:
        import json

        Path(folder, self.FILE).write_text(
            json.dumps(
                {"language": self.language, "why": self.why, "vocabulary": sorted(self.vocabulary)},
                ensure_ascii=False,
            )
        )

    @classmethod
    def load(cls, folder: str | Path) -> Analyzer:
        """The analyzer saved in `folder`; English for an index saved before analyzers were."""
        import json

        f = Path(folder, cls.FILE)
        if not f.exists():
            return ENGLISH
        d = json.loads(f.read_text())
        return cls(d["language"], frozenset(d.get("vocabulary") or ()), d.get("why", ""))


ENGLISH = Analyzer("english", why="default")
