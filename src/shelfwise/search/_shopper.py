"""What shoppers expect around the ranked list: spelling correction against the catalog's own
vocabulary, per-shop synonyms, autocomplete, filters, facets with counts, and sorting."""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..governance._privacy import PII_PATTERNS
from ._analyze import STOP_WORDS, words
from ._attributes import AttributeIndex, attribute_key, key_of
from ._retrievers import SearchCatalog

SORTS = ("relevance", "price_asc", "price_desc", "popularity")
QUERY_SCORE = 1000.0  # an autocomplete phrase from the query log scores this plus its count
# shoppers who must have typed a query before it is suggested to others: one shopper's query
# ("gift for anna's divorce") is theirs, not the shop's, and a one-off typo is no suggestion
MIN_QUERY_SHOPPERS = 3
# the placeholders governance masks personal data in free text with (`[email]`, `[phone]`, ...),
# and the words the analyzer leaves of them (`email`, `phone`, ...)
MASKS = tuple(token for _, _, token in PII_PATTERNS)
_MASK = re.compile("|".join(re.escape(t) for t in MASKS), re.IGNORECASE)
MASK_WORDS = frozenset(words(" ".join(MASKS)))


def is_masked(query: str) -> bool:
    """Whether a (curated) query holds a mask placeholder: a shopper typed personal data in it."""
    return _MASK.search(query) is not None


def category_path(value: str) -> tuple[str, ...]:
    """A category path's levels, trimmed and lower-cased: a filter is a whole-level prefix of it
    ("Fashion>Shoes" is "Fashion > Shoes"; "Fash" is no level of "Fashion")."""
    parts = [part.strip() for part in value.lower().split(">")]
    while len(parts) > 1 and not parts[-1]:  # "Fashion >" (a breadcrumb's trailing separator)
        parts.pop()
    return tuple(parts)


@dataclass
class Filters:
    category: str | None = None  # a category path prefix, e.g. "Home > Kitchen"
    brand: str | None = None  # case-insensitive exact brand
    price_min: float | None = None
    price_max: float | None = None
    in_stock: bool | None = None
    # attribute key -> the values wanted (`{"color": ("red",), "size": ("m", "l")}`): a
    # product passes with one of the values of every key (values ORed, keys ANDed); keys and
    # values trimmed and case-folded here (`attribute_key`; a key's other spellings folded as
    # ingest folds them, `key_of`), sorted, so that equal filters
    # have one repr (the search cache's key)
    attributes: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        wanted: dict[str, set[str]] = {}
        for key, values in dict(self.attributes or {}).items():
            k = key_of(key)  # (`colour`, `Farbe` are `color`, as ingest folds them)
            vs = {attribute_key(v) for v in ([values] if isinstance(values, str) else values)}
            vs.discard("")
            if k and vs:
                wanted.setdefault(k, set()).update(vs)
        self.attributes = {k: tuple(sorted(wanted[k])) for k in sorted(wanted)}

    def without_attributes(self) -> Filters:
        """These filters less the attribute ones (what a disjunctive facet counts over)."""
        return replace(self, attributes={})

    def mask(
        self,
        catalog: SearchCatalog,
        docs: np.ndarray,
        coded: tuple[Any, Any] | None = None,
        attributes: AttributeIndex | None = None,
    ) -> np.ndarray:
        """Per row of `docs`, whether it passes. `coded`: the catalog's category paths and
        brands as `Coded` columns (trimmed, lower-cased), tested once per distinct value instead
        of once per row (a search counts thousands of matching products); `attributes`: the
        catalog's attribute codes (made from `catalog.attribute_json` when not given)."""
        keep = np.ones(len(docs), bool)
        docs = np.asarray(docs, np.int64)
        if self.attributes:
            index = attributes if attributes is not None else AttributeIndex.of(catalog.attribute_json)
            keep &= index.mask(self.attributes, docs)
        if self.category:
            pre = category_path(self.category)
            if coded is not None:
                ok = np.array([category_path(str(v))[: len(pre)] == pre for v in coded[0].values], bool)
                keep &= ok[np.asarray(coded[0].codes)[docs]]
            else:
                keep &= np.array([category_path(catalog.category[d])[: len(pre)] == pre for d in docs], bool)
        if self.brand:
            b = self.brand.strip().lower()
            if coded is not None:
                ok = np.array([str(v) == b for v in coded[1].values], bool)
                keep &= ok[np.asarray(coded[1].codes)[docs]]
            else:
                keep &= np.array([catalog.brand[d].lower() == b for d in docs], bool)
        price = np.asarray(catalog.price, float)[docs]
        if self.price_min is not None:
            keep &= np.nan_to_num(price, nan=-np.inf) >= self.price_min
        if self.price_max is not None:
            keep &= np.nan_to_num(price, nan=np.inf) <= self.price_max
        if self.in_stock is not None:  # a product of unknown stock passes neither value
            keep &= np.asarray(catalog.stock_known, bool)[docs]
            keep &= np.asarray(catalog.in_stock, bool)[docs] == self.in_stock
        return keep

    def active(self) -> bool:
        return any(v is not None and v != "" and v != {} for v in vars(self).values())


def facets(catalog: SearchCatalog, docs: np.ndarray, top: int = 10) -> dict[str, Any]:
    """Counts over the matching products: top-level category, brand, price bands, stock, and
    the values of the catalog's most common attributes (`AttributeIndex.facets`)."""
    cats = Counter(catalog.category[d].split(">")[0].strip() for d in docs if catalog.category[d])
    brands = Counter(catalog.brand[d] for d in docs if catalog.brand[d])
    return {
        "category": [{"value": v, "count": c} for v, c in cats.most_common(top)],
        "brand": [{"value": v, "count": c} for v, c in brands.most_common(top)],
        **price_and_stock_facets(catalog, docs),
        "attributes": AttributeIndex.of(catalog.attribute_json).facets(docs) if len(docs) else {},
    }


def price_and_stock_facets(catalog: SearchCatalog, docs: np.ndarray) -> dict[str, Any]:
    """The `price` (quartile bands) and `in_stock` facets over the matching products (`true` /
    `false` count the products whose stock is known, as the filter reads them; `unknown`, when
    there are any, the others)."""
    price = np.asarray(catalog.price, float)[docs]
    price = price[np.isfinite(price)]
    bands: list[dict[str, Any]] = []
    if len(price):
        edges = np.unique(np.quantile(price, [0, 0.25, 0.5, 0.75, 1.0]).round(2))
        for lo, hi in zip(edges[:-1], edges[1:], strict=False):
            n = int(((price >= lo) & ((price < hi) | (hi == edges[-1]))).sum())
            bands.append({"min": float(lo), "max": float(hi), "count": n})
    stock = np.asarray(catalog.in_stock, bool)[docs]
    known = np.asarray(catalog.stock_known, bool)[docs]
    counts = {"true": int((stock & known).sum()), "false": int((~stock & known).sum())}
    if not known.all():
        counts["unknown"] = int((~known).sum())
    return {"price": bands, "in_stock": counts}


def sort_docs(
    order: str, docs: Sequence[int] | np.ndarray, catalog: SearchCatalog, popularity: np.ndarray
) -> list[int]:
    """`docs` (catalog rows) in `order`: as given ("relevance"), by popularity (most first) or
    by price; equal keys keep their given order; products with no price go last either way."""
    if order not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, not {order!r}")
    if order == "relevance":
        return [int(d) for d in docs]
    rows = np.asarray(docs, np.int64)
    if not len(rows):
        return []
    if order == "popularity":
        return rows[np.argsort(-np.asarray(popularity, np.float64)[rows], kind="stable")].tolist()
    price = np.asarray(catalog.price, np.float64)[rows]
    known = np.isfinite(price)
    sign = 1.0 if order == "price_asc" else -1.0
    return rows[np.lexsort((sign * np.where(known, price, 0.0), ~known))].tolist()


@dataclass
class Speller:
    """Corrects words unknown to the catalog to the most frequent known word within an edit
    distance of 1 (words of 4-7 letters) or 2 (8+); numbers and short words are left alone. The
    distance is the optimal string alignment one (restricted Damerau-Levenshtein, as SymSpell's):
    two adjacent letters swapped (`ligth`, `kettel`) is one edit, as a letter missing is."""

    vocabulary: Counter = field(default_factory=Counter)

    @classmethod
    def from_texts(cls, texts: list[str]) -> Speller:
        c: Counter = Counter()
        for t in texts:
            c.update(w for w in words(t) if w.isalpha())
        return cls(c)

    def _buckets(self) -> dict[tuple[str, int], list[str]]:
        """Known words by (first letter, length), and by (first two letters, length): a
        correction compares a word with its own bucket and its neighbours only, not the whole
        vocabulary, plus the words that begin with its first two letters swapped (`ilght`)."""
        if getattr(self, "_by_key", None) is None:
            by: dict[tuple[str, int], list[str]] = {}
            for v in self.vocabulary:
                by.setdefault((v[0], len(v)), []).append(v)
                if len(v) > 1 and v[0] != v[1]:
                    by.setdefault((v[:2], len(v)), []).append(v)
            self._by_key = by
        return self._by_key

    def correct_word(self, w: str) -> str:
        from rapidfuzz.distance import OSA
        from rapidfuzz.process import extract

        if w in self.vocabulary or not w.isalpha() or len(w) < 4 or not w.isascii():
            return w
        limit = 1 if len(w) < 8 else 2
        buckets = self._buckets()
        lengths = range(len(w) - limit, len(w) + limit + 1)
        pool = [v for n in lengths for v in buckets.get((w[0], n), ())]
        if w[0] != w[1]:
            pool += [v for n in lengths for v in buckets.get((w[1] + w[0], n), ())]
        found = extract(w, pool, scorer=OSA.distance, score_cutoff=limit, limit=20)
        if not found:
            return w
        best = min(found, key=lambda m: (m[1], -self.vocabulary[m[0]], m[0]))
        return str(best[0])

    def correct(self, query: str) -> str:
        out = []
        for tok in re.split(r"(\s+)", query):
            if tok.strip():
                lw = tok.lower()
                fixed = self.correct_word(lw)
                out.append(tok if fixed == lw else fixed)
            else:
                out.append(tok)
        return "".join(out)


def load_synonyms(path: str | Path | None) -> dict[str, list[str]]:
    """A shop's synonyms file (see `parse_synonyms`); {} without one."""
    if path is None or not Path(path).exists():
        return {}
    return parse_synonyms(Path(path).read_text(encoding="utf-8"))


def parse_synonyms(text: str) -> dict[str, list[str]]:
    """Synonyms text: one group per line, `a, b, c` (all equivalent) or `a => b, c` (a expands
    to b and c). `#` starts a comment."""
    groups: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "=>" in line:
            lhs, rhs = line.split("=>", 1)
            targets = [t.strip().lower() for t in rhs.split(",") if t.strip()]
            for src in (t.strip().lower() for t in lhs.split(",") if t.strip()):
                groups.setdefault(src, []).extend(targets)
        else:
            terms = [t.strip().lower() for t in line.split(",") if t.strip()]
            for t in terms:
                groups.setdefault(t, []).extend(x for x in terms if x != t)
    return groups


def expand_synonyms(query: str, synonyms: dict[str, list[str]]) -> str:
    if not synonyms:
        return query
    low = query.lower()
    extra = [
        s for key, syns in synonyms.items() if re.search(rf"(?<!\w){re.escape(key)}(?!\w)", low) for s in syns
    ]
    return query if not extra else query + " " + " ".join(extra)


@dataclass
class Autocomplete:
    """Completions of what a shopper has typed so far.

    The phrases are the query log's (scored `QUERY_SCORE` plus the shoppers who typed them:
    popular queries first; one needs `MIN_QUERY_SHOPPERS` to be suggested) and the catalog's:
    every run of one to three words that two or more titles share (`cordless drill`, `dewalt`;
    scored by the share of titles holding it, at most `max_title_phrases` of them) and each
    title's first six words (what a long prefix completes to; the runs start at every word, so
    `dril` finds `drill bit` where titles start with a brand). What is typed matches a phrase
    at its start, or a logged query at one of its later words (`driv`: `impact driver`): logged
    queries first (those starting with it, then the others), then the catalog's phrases; within
    each, by score. A query that governance
    masked (a shopper typed an email, a phone number, ... into it: `bike helmet [email]`) is
    never suggested, nor counted for the query it would have been unmasked."""

    phrases: list[tuple[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        # every phrase's start and every logged query's later words' starts (the catalog's runs
        # start at every word already), ordered by the text from there on (`suggest` finds a
        # prefix's matches by bisection); `_order` ranks a match: logged queries' starts, their
        # inner words, the catalog's phrases; then by score
        texts = [p for p, _ in self.phrases]
        rank: list[int] = []
        start: list[int] = []
        group: list[int] = []
        for i, (p, score) in enumerate(self.phrases):
            rank.append(i)
            start.append(0)
            if score <= QUERY_SCORE:
                group.append(2)
                continue
            group.append(0)
            for m in re.finditer(" (?=\\S)", p):
                rank.append(i)
                start.append(m.end())
                group.append(1)
        by_text = sorted(range(len(rank)), key=lambda e: texts[rank[e]][start[e] :])
        self._texts = texts
        self._rank = np.asarray(rank, np.int64)[by_text]
        self._start = np.asarray(start, np.int64)[by_text]
        self._order = np.asarray(group, np.int64)[by_text] * max(len(texts), 1) + self._rank

    @classmethod
    def build(
        cls,
        queries: list[str],
        titles: list[str],
        max_titles: int = 50_000,
        max_title_phrases: int = 100_000,
        correct: Callable[[str], str] | None = None,
        min_shoppers: int = MIN_QUERY_SHOPPERS,
    ) -> Autocomplete:
        """`queries`: each once per shopper who typed it (`load_query_log`); a query is
        suggested when `min_shoppers` typed it, spelled as `correct` (the catalog's speller)
        spells it (`dewalr tools` counts for `dewalt tools`)."""
        qc = Counter(" ".join(words(q)) for q in queries if q and q.strip() and not is_masked(q))
        if correct is not None:
            fixed: Counter[str] = Counter()
            for q, n in qc.items():
                fixed[" ".join(words(correct(q)))] += n
            qc = fixed
        phrases = [(q, QUERY_SCORE + n) for q, n in qc.items() if q and n >= min_shoppers]
        seen = {q for q, _ in phrases}
        n_titles = max(len(titles), 1)
        shared: Counter[str] = Counter()
        firsts: list[str] = []
        for t in titles:
            ws = words(t)[:TITLE_WORDS]
            if len(firsts) < max_titles:
                firsts.append(" ".join(ws[:6]))
            shared.update(set(_title_runs(ws)))
        for p, n in shared.most_common(max_title_phrases):
            if n < 2:
                break
            if p not in seen:
                seen.add(p)
                phrases.append((p, n / (n_titles + 1)))
        for p in firsts:
            if p and p not in seen:
                seen.add(p)
                phrases.append((p, 1 / (n_titles + 1)))
        phrases.sort(key=lambda x: (-x[1], x[0]))
        return cls(phrases)

    @classmethod
    def saved_with_masked(cls, phrases: list[tuple[str, float]], vocabulary: Counter) -> Autocomplete:
        """The phrases of a bundle saved while masked queries were still kept, less those: the
        analyzer had dropped the placeholder's brackets (`bike helmet email`), so a logged query
        holding a placeholder's word that the catalog does not know (`email`, not `phone` in a
        shop that sells phone cases) is taken for a masked one."""
        return cls(
            [
                (p, s)
                for p, s in phrases
                if s <= QUERY_SCORE or not any(w in MASK_WORDS and w not in vocabulary for w in p.split())
            ]
        )

    def logged(self, top: int) -> list[str]:
        """The `top` most frequent queries of the query log (the catalog titles left out)."""
        return [p for p, score in self.phrases if score > QUERY_SCORE][:top]

    def suggest(self, prefix: str, k: int = 8) -> list[str]:
        pre = " ".join(words(prefix))
        if not pre or k < 1:
            return []
        if prefix.endswith(" "):
            pre += " "
        key = self._suffix
        lo = bisect_left(range(len(self._rank)), pre, key=key)
        hi = bisect_left(range(len(self._rank)), pre + "\U0010ffff", lo=lo, key=key)
        found = self._order[lo:hi]
        if len(found) > 4 * k:
            found = found[np.argpartition(found, 4 * k)[: 4 * k]]
        out: list[str] = []
        for o in np.sort(found):
            p = self._texts[int(o) % max(len(self._texts), 1)]
            if p not in out:
                out.append(p)
                if len(out) == k:
                    break
        return out

    def _suffix(self, e: int) -> str:
        return self._texts[self._rank[e]][self._start[e] :]


TITLE_WORDS = 12  # the words of a title its shared phrases are taken from


def _title_runs(ws: list[str]) -> list[str]:
    """A title's runs of one to three words that could be a query: none starting or ending with
    a function word (`drill with`), a number or a lone letter (`dewalt 20`, `painter 39 s`)."""
    stop = _stop_words()
    ends = [w not in stop and len(w) > 1 and not w.isdigit() for w in ws]  # may start or end a run
    return [
        " ".join(ws[i:j])
        for i in range(len(ws))
        if ends[i]
        for j in range(i + 1, min(i + 3, len(ws)) + 1)
        if ends[j - 1]
    ]


@lru_cache(maxsize=1)
def _stop_words() -> frozenset[str]:
    return frozenset(STOP_WORDS.split())
