"""The search pipeline: lexical + semantic retrieval, hybrid fusion, LightGBM re-ranking.

    query -> analyze -> BM25 top-N (tantivy)  \
                     -> MiniLM top-N (faiss)  -> union
                     -> multilingual top-N    /  (when the catalog has Chinese text) -> features -> lambdarank -> top k
                                               \\-> reciprocal rank fusion when no ranker

The ranker is trained on relevance judgments (graded; unjudged candidates count 0) and kept only
if it beats the hybrid on held-out queries.

The engine is one class assembled from its parts (see `_state`): `_index` builds and loads the
indexes, `_features` computes the ranking features, `_training` fits the learned stages; this
module is the query-time searcher.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from ..evaluation._metrics import graded_ndcg_at_k as ndcg_at_k
from ._analyze import MAX_QUERY_CHARS, STOP_WORDS, analyze, contains_cjk
from ._features import _BM25, _COLUMN, _RRF, FEATURES, Seen

# helpers the feature tests import from this module, where they lived before the split
from ._features import _postings as _postings
from ._features import _title_idf as _title_idf
from ._features import _weighted_match as _weighted_match
from ._index import SearchIndex
from ._personal import Profile
from ._shopper import Filters, expand_synonyms, facets, price_and_stock_facets, sort_docs
from ._state import QUERY_CACHE_SIZE, Query, QueryVectors
from ._training import RankerTraining, _blend

__all__ = [
    "FEATURES",
    "LEVELS",
    "NULL_QUERIES",
    "QUERY_CACHE_SIZE",
    "Query",
    "QueryVectors",
    "SearchEngine",
    "ndcg_at_k",
]

# How much of the pipeline a query gets, richest first (see `SearchEngine.query`): "full" is
# lexical + semantic retrieval, the ranker's features and LightGBM (and the cross-encoder when one
# was kept); "fused" skips the features and the ranker (reciprocal rank fusion of the retrievers:
# no feature building, one batched encoder call); "lexical" is BM25 alone (no encoder). A server
# under a deep queue steps down these levels to answer within its latency budget.
LEVELS = ("full", "fused", "lexical")
# a query with no keyword hit is a semantic match only when some product is closer to it than
# the nearest of NULL_QUERIES random letter strings (see `SearchEngine.no_match_threshold`)
NULL_QUERIES = 64


# a page keeps the rows it counts up to this many; more are found again when recounted
COUNTED_KEPT = 4096


@lru_cache(maxsize=1)
def stop_terms() -> frozenset[str]:
    """English function words as the analyzer indexes them (stemmed): they say nothing of what
    a shopper wants, so they do not decide which products match (`_holding_terms`)."""
    return frozenset(analyze(STOP_WORDS))


class SearchEngine(SearchIndex, RankerTraining):
    """Product search over one catalog: `build` (or `load`) it, optionally train its learned
    stages (`finetune_encoder`, `fit_ranker`, `fit_cross_encoder`), then `query` or `search`."""

    # -- querying ---------------------------------------------------------------------------
    def _query(self, text: str) -> Query:
        text = (text or "")[:MAX_QUERY_CHARS]
        fixed = self.correct(text) if text.strip() else text
        if self.synonyms_ and text.strip():
            fixed = self._synonym_words_kept(text, fixed)
        terms = self.analyzer_.analyze(expand_synonyms(fixed, self.synonyms_))
        return Query(fixed, terms, fixed if fixed != text else None)

    def _synonym_words_kept(self, text: str, fixed: str) -> str:
        """`fixed` (the speller's) with the shop's synonym words as typed: a word a synonym
        names is the shop's word, not a typo of a catalog word (`spanner => wrench` was searched
        as "spinner", `weed wacker` as "weed wicker"), and a misspelt one goes to the nearest
        synonym word before any catalog word (the speller's edit distances)."""
        import re

        from ._shopper import Speller

        synonyms = self.synonyms_
        cached = getattr(self, "_synonym_speller", None)
        if cached is None or cached[0] is not synonyms:
            vocab: Counter[str] = Counter()
            for key, values in synonyms.items():
                for phrase in (key, *values):
                    vocab.update(w for w in re.findall(r"\w+", phrase.lower()) if w.isalpha())
            cached = self._synonym_speller = (synonyms, Speller(vocab))
        speller = cached[1]
        typed, corrected = re.split(r"(\s+)", text), re.split(r"(\s+)", fixed)
        if len(typed) != len(corrected):
            return fixed
        known = self.speller_.vocabulary
        out = []
        for a, b in zip(typed, corrected, strict=True):
            low = a.lower()
            # a word the speller changed, or one the catalog does not know (left as typed)
            if a.strip() and (low != b.lower() or low not in known):
                near = speller.correct_word(low)
                if low in speller.vocabulary or near != low:
                    out.append(a if near == low else near)
                    continue
            out.append(b)
        return "".join(out)

    def correct(self, text: str) -> str:
        """The spelling-corrected query (cached: the speller's fuzzy match is the costly part)."""
        with self._caches_lock:
            fixed = self._spelling.get(text)
        if fixed is None:
            fixed = self.speller_.correct(text)
            with self._caches_lock:
                self._spelling[text] = fixed
        return fixed

    def suggest(self, prefix: str, k: int = 8) -> list[str]:
        return self.autocomplete_.suggest(prefix, k)

    def keyword_hits(self, text: str, k: int = 10) -> list[str]:
        """The product ids the keyword index ranks first for `text` (spelling corrected and the
        shop's synonyms added, as `query` does), best first: BM25 alone, no encoder, no ranker
        (what `insights demand` checks a free-text search against)."""
        q = self._query(text)
        if not q.terms:
            return []
        ids = self.lexical_.search_terms(q.terms, k).ids[0]
        return [self.catalog.product_ids[int(i)] for i in ids if i >= 0]

    def filter_warnings(self, filters: Filters | None, bundle: str | None = None) -> list[str]:
        """What a client should know of `filters` on this index: attribute filters asked of an
        index saved before they existed (`has_attribute_index_`) match nothing, an empty page
        with no word why; said, with how to get them (`bundle`: its version, in the words)."""
        if filters is None or not filters.attributes or self.has_attribute_index_:
            return []
        asked = ", ".join(f"attr.{k}" for k in filters.attributes)
        which = f"bundle {bundle}" if bundle else "this bundle"
        return [
            f"attribute filters ({asked}): {which} was trained before attribute filters existed and has "
            "no attribute index, so no product matches them; the next `shelfwise train` adds it"
        ]

    def levels(self) -> tuple[str, ...]:
        """The levels this engine answers at, richest first ("full" only when it adds to
        "fused": a ranker or a cross-encoder; both need the query's vectors)."""
        if self.ranker_ is None and self.cross_ is None:
            return LEVELS[1:]
        return LEVELS

    def query(
        self,
        text: str,
        k: int = 10,
        *,
        filters: Filters | None = None,
        sort: str = "relevance",
        offset: int = 0,
        profile: Profile | None = None,
        level: str = "full",
        vecs: QueryVectors | None = None,
    ) -> dict[str, Any]:
        """A results page: items (product id, score), facets over the matching products, the
        corrected query when spelling was fixed, `total` (how many products match: when a
        keyword matched, every product of the catalog holding a query word and passing the
        filters, retrieved or not; else every semantic candidate; the nearest products without
        the words are ranked among and after them, and come after them in any other `sort`), how
        they were found (`match`), and the `stages` that ran. A page past the candidate depth
        (`offset + k` above it) retrieves deeper, up to `max_depth` products per retriever.

        `match` is "keyword" when some product matches a query term (terms are ORed, so a query
        is already relaxed to any of its terms; the ranker weighs coverage), "semantic_only" when
        no product matches any term but the encoders find a product closer to the query than
        meaningless text is (`no_match_threshold`), and "none" otherwise: then `total` is 0 and
        the items are the most popular products (`"fallback": "popular"`; none when the shop has
        no popularity yet), never the nearest random vectors.

        `level` (see LEVELS) bounds the work: "full" runs every stage this engine has, "fused"
        ranks by reciprocal rank fusion of the retrievers, "lexical" by BM25 alone (the encoder
        still runs when nothing matches a keyword: that is the only way to tell a semantic match
        from none). `vecs`: the query's vectors when the caller encoded a batch of queries at once.

        With filters, or for a page past the candidate depth, retrieval goes deeper (x10, then
        x100, up to `max_depth` products per retriever) until the page is full: a filter or a
        page number never empties a page that the catalog could fill from deeper in the ranking. With a shopper's `profile` (see `profile()`), the
        ranker's personal features are filled in (personalized search)."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
        if level == "full" and self.ranker_ is None and self.cross_ is None:
            level = "fused"  # the features would only feed the fusion score
        q = self._query(text)
        stages: list[str] = ["lexical"]
        encoded = False  # whether the encoders ran (the semantic retrievers with them)
        filtering = filters is not None and filters.active()
        depth = self.candidates
        # each retrieval's candidates and scores: a deeper one's new products rank after the
        # shallower one's (page 3 never repeats a product of page 1, ranked among fewer)
        rounds: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        holding: np.ndarray | None = None  # the catalog's products holding a word (and passing the filters)
        # the catalog rows passing the filters, once the first retrieval left too few: a deeper
        # top list is then kept to them as it is read (`_ranked`), its ranks unchanged; a narrow
        # filter's 1,000 deep products cost a Python entry each only when they pass
        allowed: np.ndarray | None = None
        while True:
            if level == "full":
                if vecs is None or (self.multilingual_ is not None and vecs.multilingual is None):
                    vecs = self.encode_queries([q.text])[0]
                encoded = True
                cands, x = self._features(q, None, vecs=vecs, depth=depth, profile=profile)
                keyword = bool((x[:, _BM25] > 0).any())
                semantic = self._semantic_match(x[:, _COLUMN["cosine"]], x[:, _COLUMN["cosine_ml"]], vecs)
                score = self._scores(x)
                tie = _tie_break(x)
            else:
                if level == "lexical":
                    found, seen = self._retrieve_kept(q, None, depth, allowed, lexical=True)
                    # no keyword (none in the catalog passing the filters, as the full level
                    # judges it: "earbuds" in Sports was a semantic match there and "none" here)
                    if filtering and holding is None:
                        holding = self._holding_terms(q.terms, filters)
                    none_kept = filtering and holding is not None and not len(holding)
                    if (not seen.lexical or none_kept) and q.text.strip():  # only the encoder can tell
                        vecs = vecs or self.encode_queries([q.text], multilingual=None)[0]
                        encoded = True
                        found, seen = self._retrieve_kept(q, vecs, depth, allowed)
                else:
                    vecs = vecs or self.encode_queries([q.text], multilingual=None)[0]
                    if vecs.multilingual is not None and not contains_cjk(q.text):
                        # this level reads Latin queries with MiniLM alone, whether or not the
                        # multilingual vector happens to be cached: the page must not depend on it
                        vecs = QueryVectors(vecs.main, None)
                    encoded = True
                    found, seen = self._retrieve_kept(q, vecs, depth, allowed)
                cands, score, keyword, semantic = self._fuse(found, depth, vecs, seen)
                tie = np.zeros(len(cands))
                if (
                    not keyword
                    and not semantic
                    and self.multilingual_ is not None
                    and q.text.strip()
                    and (vecs is None or vecs.multilingual is None)
                ):  # before saying "no match", the multilingual encoder too (as the full level does)
                    vecs = self.encode_queries([q.text])[0]
                    encoded = True
                    found, seen = self._retrieve_kept(q, vecs, depth, allowed)
                    cands, score, keyword, semantic = self._fuse(found, depth, vecs, seen)
                    tie = np.zeros(len(cands))
            if filtering and len(cands):
                keep = self._filter_mask(filters, cands)  # type: ignore[arg-type]
                cands, score, tie = cands[keep], score[keep], tie[keep]
            rounds.append((cands, score, tie))
            need = offset + k
            if (
                len(cands) >= need
                or depth >= min(self.max_depth, len(self.catalog))
                or (not filtering and need <= depth)  # (a deeper retrieval adds nothing)
            ):
                break
            depth = min(depth * 10, self.max_depth, len(self.catalog))
            if filtering and allowed is None and level != "full":
                allowed = self._filter_mask(filters, np.arange(len(self.catalog)))  # type: ignore[arg-type]
        if encoded and q.text.strip():
            stages.append("semantic")
        if not keyword and not semantic:
            return self._no_match(q, k, offset, filters, sort, stages, depth) | {"level": level}
        order: list[int] = []
        by_doc: dict[int, float] = {}
        # (the cross-encoder reorders the first retrieval's head only: a deeper retrieval must
        # not reorder what page 1 showed)
        crossed = (
            level == "full" and self.cross_ is not None and bool(q.text.strip()) and len(rounds[0][0]) >= 2
        )
        for i, (round_cands, round_score, round_tie) in enumerate(rounds):
            order_idx = np.lexsort((-round_tie, -round_score))
            if crossed and i == 0:
                order_idx = self._cross_rerank(q.text, round_cands, order_idx, round_score)
            ranked = round_cands[order_idx]
            if by_doc:
                ranked = ranked[~np.isin(ranked, np.fromiter(by_doc, np.int64, len(by_doc)))]
            order += [int(d) for d in ranked]
            for d, v in zip(round_cands.tolist(), round_score.tolist(), strict=True):
                by_doc.setdefault(d, v)
        if level == "full":
            stages += ["rerank", "cross_encoder"] if crossed else ["rerank"]
        elif len(stages) > 1:
            stages.append("fusion")
        # a keyword match counts (and facets) every product of the catalog that holds a query
        # word and passes the filters, retrieved or not (a shop's "lamp" has 5,000 results, not
        # the candidate depth's 100): the semantic neighbours the ranker places among and after
        # them are not "results for" the words (and when filters left no product with a word,
        # what is left is a semantic match, counted among the candidates)
        if holding is None:  # (the lexical level found them already when filtering)
            holding = self._holding_terms(q.terms, filters if filtering else None)
        keyword = bool(len(holding))
        if not keyword and not semantic:  # BM25 matched only words like "the": no match
            return self._no_match(q, k, offset, filters, sort, stages, depth) | {"level": level}
        counted = holding if keyword else cands
        if sort != "relevance" and keyword:
            # sorted by price or popularity: the retrieved products holding a word first, then
            # the semantic neighbours (the candidates bound a sort by relevance: the cheapest
            # product saying "red" is no answer to "red shoes")
            arr = np.array(order, np.int64)
            hit = np.isin(arr, holding)
            order = sort_docs(sort, arr[hit], self.catalog, self.popularity_) + sort_docs(
                sort, arr[~hit], self.catalog, self.popularity_
            )
        else:
            order = sort_docs(sort, order, self.catalog, self.popularity_)
        page = order[offset : offset + k]
        kept = not keyword or len(counted) <= COUNTED_KEPT
        # the attribute facets count the matches of every filter but the attribute ones, each
        # key with the other keys' filters (disjunctive: `color=red` still counts the blue);
        # a semantic match's candidates were filtered as they were retrieved: counted as they are
        wanted = filters.attributes if filtering else {}  # type: ignore[union-attr]
        base, base_spec = counted, None
        if wanted and keyword:
            rest = filters.without_attributes()  # type: ignore[union-attr]
            base = self._holding_terms(q.terms, rest if rest.active() else None)
            if len(base) > COUNTED_KEPT:
                base_spec = (list(q.terms), rest if rest.active() else None)
        return {
            # (a match sorted onto the page without being retrieved has no ranker score: 0)
            "items": [{"product_id": self.catalog.product_ids[d], "score": by_doc.get(d, 0.0)} for d in page],
            "total": len(counted),
            "facets": self._facets(counted, base, wanted),
            # the rows `total` and the facets count (serving recounts them after its rules,
            # `counted_rows`): kept when few, else the words and filters that find them again
            "counted": counted if kept else None,
            "count_spec": None if kept else (list(q.terms), filters if filtering else None),
            # the attribute filters and the rows their facets count (`attribute_rows`): kept when
            # few, else found again; none when they are the counted rows
            "attribute_filter": wanted,
            "attribute_rows": base if wanted and keyword and base_spec is None else None,
            "attribute_spec": base_spec,
            "corrected_query": q.corrected,
            # (filters that left nothing: no match of either kind, the page empty)
            "match": "keyword" if keyword else "semantic_only" if len(counted) else "none",
            "fallback": None,
            "depth": depth,
            "stages": stages,
            "level": level,
        }

    def _facets(
        self,
        docs: np.ndarray,
        base: np.ndarray | None = None,
        wanted: Mapping[str, Sequence[str]] | None = None,
        groups: np.ndarray | None = None,
        top: int = 10,
    ) -> dict[str, Any]:
        """`facets(self.catalog, docs)`, the same counts in the same order, from per-product codes
        made once per engine (counting strings per candidate was ~40% of a BM25-only page); the
        attribute facets over `base` (the rows matching every filter but the `wanted` attribute
        values; `docs` when not given; `groups`: `base`'s rows' groups, see
        `AttributeIndex.facets`)."""
        codes = self._facet_codes
        if codes is None:
            c = self.catalog
            tops = [cat.split(">")[0].strip() if cat else "" for cat in c.category]
            top_names, top_code = np.unique(np.array(tops, dtype=object), return_inverse=True)
            brand_names, brand_code = np.unique(np.array(list(c.brand), dtype=object), return_inverse=True)
            codes = self._facet_codes = (top_names, top_code, brand_names, brand_code)
        top_names, top_code, brand_names, brand_code = codes
        docs = np.asarray(docs, np.int64)
        return {
            "category": _counted(top_names, top_code[docs], top),
            "brand": _counted(brand_names, brand_code[docs], top),
            **price_and_stock_facets(self.catalog, docs),
            "attributes": self.attributes_.facets(docs if base is None else base, wanted, groups),
        }

    def attribute_rows(self, page: dict[str, Any]) -> np.ndarray:
        """The rows a page's attribute facets count (see `query`): its counted rows when it has
        no attribute filter, else those matching its words and its other filters."""
        rows = page.get("attribute_rows")
        if rows is not None:
            return np.asarray(rows, np.int64)
        spec = page.get("attribute_spec")
        if spec is not None:
            return self._holding_terms(spec[0], spec[1])
        return self.counted_rows(page)

    def _holding_terms(self, terms: list[str], filters: Filters | None) -> np.ndarray:
        """The catalog rows (ascending) holding any of the query's content words in a field
        BM25 reads (the products BM25 matches, retrieved at any depth; a synonym widens them),
        those passing `filters` when given. Words that say nothing of a product ("for", "the",
        "with": `stop_terms`) are left out when the query has others ("lamp by the door"
        matched every product whose description says "by")."""
        postings = self._text_rows
        distinct = list(dict.fromkeys(terms))
        stop = stop_terms() if self.analyzer_.language == "english" else self.analyzer_.stop_terms()
        content = [t for t in distinct if t not in stop] or distinct
        parts = [postings[t] for t in content if t in postings]
        if not parts:
            return np.zeros(0, np.int64)
        if len(parts) == 1:
            rows = np.asarray(parts[0], np.int64)
        else:  # (a mask over the catalog: no sort of the common words' long postings)
            hit = np.zeros(len(self.catalog), bool)
            for p in parts:
                hit[p] = True
            rows = np.flatnonzero(hit)
        if filters is not None and len(rows):
            rows = rows[self._filter_mask(filters, rows)]
        return rows

    def counted_rows(self, page: dict[str, Any]) -> np.ndarray:
        """The rows a page's `total` and facets count (what serving recounts after its rules):
        kept in the page when few, else found again from the words and filters it was asked
        with (a cached page of "shoes" must not carry 50,000 row numbers)."""
        counted = page.get("counted")
        if counted is not None:
            return np.asarray(counted, np.int64)
        spec = page.get("count_spec")
        if spec is None:
            return np.zeros(0, np.int64)
        return self._holding_terms(spec[0], spec[1])

    def _filter_mask(self, filters: Filters, docs: np.ndarray) -> np.ndarray:
        """`filters.mask` over this engine's coded category, brand and attribute columns."""
        t = self._tables
        return filters.mask(self.catalog, docs, (t["profile_category"], t["profile_brand"]), self.attributes_)

    def _fuse(
        self, found: list[dict[int, tuple[float, int]]], depth: int, vecs: QueryVectors | None, seen: Seen
    ) -> tuple[np.ndarray, np.ndarray, bool, bool]:
        """Candidates, their reciprocal-rank-fusion score (BM25 alone when the encoders did
        not run), whether a keyword matched and whether the encoders found a semantic match
        (`seen`: what the whole top lists said, `found` may hold only a filter's rows of them)."""
        lex, sem, ml = found
        cands = np.array(sorted(set().union(*found)), np.int64)
        if not seen.semantic:  # BM25 alone: its own score orders (ties as tantivy ranked)
            score = np.array([lex[int(d)][0] for d in cands], np.float32)
            return cands, score, seen.lexical, False
        c = depth + 1
        score = np.zeros(len(cands), np.float32)
        for ranks, listed in zip(found, (seen.lexical, seen.main, seen.multilingual), strict=True):
            if listed:  # (a list that found products, whether or not the filter kept any)
                score += np.array([1.0 / (self.rrf_k + ranks.get(int(d), (0.0, c))[1]) for d in cands])
        return cands, score, seen.keyword, self._semantic_match(seen.best, seen.best_ml, vecs)

    def _semantic_match(self, cosine: Any, cosine_ml: Any, vecs: QueryVectors | None) -> bool:
        """Whether the encoders found a product closer to the query than meaningless text is:
        the best cosine (main encoder, or the multilingual one when it ran) at least the query's
        cosine to the nearest of `NULL_QUERIES` random letter strings (`no_match_threshold`)."""
        if vecs is None:
            return False
        top = float(np.max(cosine, initial=-1.0))
        if top >= self.no_match_threshold(vecs.main, "main"):
            return True
        if self.multilingual_ is None or vecs.multilingual is None:
            return False
        top_ml = float(np.max(cosine_ml, initial=-1.0))
        return top_ml != 0.0 and top_ml >= self.no_match_threshold(vecs.multilingual, "multilingual")

    def no_match_threshold(self, vec: np.ndarray, which: str = "main") -> float:
        """The cosine a query (its vector `vec` under one encoder, "main" or "multilingual") must
        reach with some product to be a semantic match: its cosine to the nearest of
        `NULL_QUERIES` random letter strings of one or two 5-10 letter words (seeded).

        A query with meaning is nearer to the product it means than to any random string
        (MiniLM, demo catalog of 322 products: "cutlery" 0.467 vs 0.283, "earbuds" 0.608 vs
        0.278); a meaningless one is nearer to the random strings, which look like it, than to
        any product ("asdkjhqwe" 0.277 vs 0.571). The rule reads the query, not the catalog: a
        catalog-wide threshold (the best cosine random strings get against the catalog) rises
        with the catalog's size and its oddest titles (0.467 on 30 demo products, above every
        synonym tried) and, on a tiny catalog, sends real synonyms to the fallback.
        The strings' vectors are encoded once per loaded engine, on first use (~0.1 s)."""
        with self._caches_lock:
            null = self._null_vectors.get(which)
        if null is None:
            retriever = self.semantic_ if which == "main" else self.multilingual_
            if retriever is None:
                return float("inf")
            rng = np.random.default_rng(20261201)
            letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))

            def word() -> str:
                return "".join(rng.choice(letters, int(rng.integers(5, 11))))

            texts = [" ".join(word() for _ in range(int(rng.integers(1, 3)))) for _ in range(NULL_QUERIES)]
            null = np.asarray(retriever.encode_queries(texts), np.float32)  # as queries are
            with self._caches_lock:
                self._null_vectors[which] = null
        return float(np.max(null @ np.asarray(vec, np.float32).ravel()))

    def _no_match(
        self, q: Query, k: int, offset: int, filters: Filters | None, sort: str, stages: list[str], depth: int
    ) -> dict[str, Any]:
        """The page of a query that matches nothing: no results, and the shop's most popular
        products (those passing the filters) as a fallback that says it is one. In the cold-start
        list's order: popularity, ties by the judged gain, then catalog order; a shop with no
        events yet by the judged gain (its day-0 pages were empty while its recommendations
        had a list, and the two "popular" lists broke ties differently: a new shop's walk)."""
        pop = np.asarray(self.popularity_, np.float64)
        gain = np.asarray(self.prior_sum_, np.float64)
        signal = pop if len(pop) and float(pop.max()) > 0 else gain
        fallback: list[int] = []
        if len(signal) and float(signal.max()) > 0:
            # the catalog in that order, sorted once per popularity array (a whole-catalog sort
            # per no-result page: ~100 ms on a million products)
            cached = getattr(self, "_popular_order", None)
            if cached is None or cached[0] is not self.popularity_:
                order = np.lexsort((np.arange(len(signal)), -gain, -signal))
                cached = self._popular_order = (self.popularity_, order)
            top = cached[1][: max(1000, offset + k)]
            top = top[signal[top] > 0]
            if filters is not None and filters.active():
                top = top[self._filter_mask(filters, top)]
            fallback = sort_docs(sort, [int(d) for d in top], self.catalog, self.popularity_)[
                offset : offset + k
            ]
        return {
            "items": [{"product_id": self.catalog.product_ids[d], "score": 0.0} for d in fallback],
            "total": 0,
            "facets": facets(self.catalog, np.zeros(0, np.int64)),
            "counted": np.zeros(0, np.int64),
            "corrected_query": q.corrected,
            "match": "none",
            "fallback": "popular" if fallback else None,
            "depth": depth,
            "stages": stages,
        }

    def _scores(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0, np.float32)
        if self.ranker_ is not None:
            cols = self.ranker_columns_
            return np.asarray(self.ranker_.predict(x if cols is None else x[:, cols]), dtype=np.float32)
        return x[:, _RRF]

    def encode_queries(
        self, texts: list[str], multilingual: bool | None = True, encoded: list[int] | None = None
    ) -> list[QueryVectors]:
        """Each query's embedding under the main encoder and, when the catalog has one, the
        multilingual encoder (batched: one encoder call per list, for the texts not cached).
        `multilingual=None`: that encoder only for queries with Chinese text (the "fused" and
        "lexical" levels: MiniLM reads the others; the full pipeline's features need both).
        `encoded`, when given, gets how many distinct texts went through an encoder (0 when
        every vector was cached): what the call's time was spent on."""
        clean = [(t or "")[:MAX_QUERY_CHARS] for t in texts]
        clean = [t if t.strip() else " " for t in clean]
        has_ml = self.multilingual_ is not None

        def wants_ml(t: str) -> bool:
            return has_ml and (multilingual is True or (multilingual is None and contains_cjk(t)))

        with self._caches_lock:
            got = {t: self._vectors.get(t) for t in clean}
        main = [t for t, v in got.items() if v is None]
        multi = [t for t, v in got.items() if wants_ml(t) and (v is None or v.multilingual is None)]
        if main or multi:
            m = dict(zip(main, self.semantic_.encode_queries(main), strict=True)) if main else {}
            u = dict(zip(multi, self.multilingual_.encode_queries(multi), strict=True)) if multi else {}  # type: ignore[union-attr]
            with self._caches_lock:
                for t in set(main) | set(multi):
                    old = got[t]
                    if old is None:  # new: the main vector was just encoded
                        vec = QueryVectors(m[t], u.get(t))
                    else:  # cached without the multilingual vector, which is now wanted
                        vec = QueryVectors(old.main, u.get(t, old.multilingual))
                    got[t] = self._vectors[t] = vec
        if encoded is not None:
            encoded.append(len(set(main) | set(multi)))
        return [got[t] for t in clean]  # type: ignore[misc]

    def search(
        self, text: str, k: int = 10, candidates: list[str] | None = None, vecs: QueryVectors | None = None
    ) -> list[tuple[str, float]]:
        """Top k (product_id, score); with `candidates`, only those product ids are re-ranked
        (unknown ids keep their given order after the known ones)."""
        q = self._query(text)
        given = None
        unknown: list[str] = []
        if candidates is not None:
            known = [self._index[p] for p in candidates if p in self._index]
            unknown = [p for p in candidates if p not in self._index]
            given = np.array(known, np.int64)
        cands, x = self._features(q, given, vecs=vecs)
        if len(cands) == 0:
            return [(p, 0.0) for p in unknown][:k]
        score = self._scores(x)
        order = self._cross_rerank(q.text, cands, np.lexsort((-_tie_break(x), -score)), score)[:k]
        out = [(self.catalog.product_ids[int(cands[i])], float(score[i])) for i in order]
        return (out + [(p, float("-inf")) for p in unknown])[:k]

    def _cross_rerank(self, text: str, cands: np.ndarray, order: np.ndarray, score: np.ndarray) -> np.ndarray:
        """The first `cross_top_` of `order` (indices into `cands`, `score` the pipeline's
        scores) re-ordered by the blend of the pipeline's and the cross-encoder's standardized
        scores (`cross_weight_` on the cross-encoder), when one was kept; the rest as they were."""
        if self.cross_ is None or not text.strip() or len(order) < 2:
            return order
        head = order[: self.cross_top_]
        ce = self.cross_.score(text, [self.catalog.text(int(cands[i])) for i in head])
        return np.concatenate([head[_blend(score[head], ce, self.cross_weight_)], order[self.cross_top_ :]])

    def search_many(
        self, texts: list[str], k: int = 10, candidates: list[list[str] | None] | None = None
    ) -> list[list[tuple[str, float]]]:
        clean = [(t or "")[:MAX_QUERY_CHARS] for t in texts]
        vecs = self.encode_queries(clean)
        cands = candidates or [None] * len(texts)
        return [self.search(t, k, c, vecs=v) for t, c, v in zip(clean, cands, vecs, strict=True)]


def _tie_break(x: np.ndarray) -> np.ndarray:
    """What orders candidates the ranker scores alike (a tree ensemble puts every product without
    a query word in one leaf: a "tent" page was padded with boots, dumbbells and knives in
    catalog order): their closeness to the query, both encoders' cosines."""
    return x[:, _COLUMN["cosine"]] + x[:, _COLUMN["cosine_ml"]]


def _counted(names: np.ndarray, codes: np.ndarray, top: int) -> list[dict[str, Any]]:
    """`Counter(...).most_common(top)` over coded values, the empty one left out: by count,
    ties in order of first appearance (as Counter orders them)."""
    if not len(codes):
        return []
    counts = np.bincount(codes, minlength=len(names))
    first = np.full(len(names), len(codes), np.int64)
    np.minimum.at(first, codes, np.arange(len(codes)))
    seen = np.flatnonzero(counts)
    seen = seen[names[seen] != ""]
    order = seen[np.lexsort((first[seen], -counts[seen]))][:top]
    return [{"value": str(names[u]), "count": int(counts[u])} for u in order]
