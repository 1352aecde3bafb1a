"""Ranking features: the candidates of a query (the union of the retrievers' top lists) and,
per candidate, the FEATURES the LightGBM ranker reads (retriever scores and ranks, term matches
against the title and the rest of the text, IDF-weighted coverage, product priors, the
shopper's profile). Also the per-product match tables' helpers (`_index` builds the tables)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import Any, NamedTuple

import numpy as np

from ..models import Results
from ._analyze import contains_cjk
from ._personal import USER_FEATURES, Profile
from ._state import EngineState, Query, QueryVectors, query_key
from ._units import measures

FEATURES = [
    "bm25",
    "bm25_rank",
    "bm25_title",
    "cosine",
    "cosine_rank",
    "cosine_ml",
    "cosine_ml_rank",
    "rrf",
    "query_terms",
    "title_terms",
    "title_coverage",
    "text_coverage",
    "title_bigram_coverage",
    "exact_in_title",
    "first_term_in_title",
    "numbers_matched",
    # the product's judgments by training queries (out of fold for a training query). Measured
    # and not taken (Home Depot harness, 400-step encoder): the same conditioned on the query,
    # from the training queries that judged the product (IDF-weighted term overlap with them,
    # the gain at the closest, the overlap-weighted gain, the query's coverage by their terms):
    # test NDCG@10 -0.0015 +- 0.0014 with all four, +0.0001 with either part; the tuned encoder
    # and this prior already carry it
    "prior_log_count",
    "prior_mean_gain",
    "log_popularity",
    "category_match",
    "log_price",
    "ctr",
    # term-weighted matching (IDF over the catalog's titles, see `_weighted_match`), the query's
    # own make-up, and the retrievers' scores relative to the query's best candidate
    "idf_coverage",
    "last_term_in_title",
    "max_idf_missing",
    "query_idf_max",
    "query_numbers",
    "bm25_rel",
    "cosine_rel",
    # fuzzy matching of the query's and the title's characters (rapidfuzz, see `_fuzzy`: word
    # forms the analyzer does not join, compounds, model numbers written apart), and the
    # title-match strength relative to the query's best candidate (LambdaMART compares rows
    # across queries; these say how a row stands within its own)
    "fuzzy_token_set",
    "fuzzy_partial",
    "fuzzy_rel",
    "idf_coverage_rel",
    "bm25_title_rel",
    "full_matches",
    # sizes written alike (see `_units`: `1/2 in.` and `0.5 inch`, `36"` and `36 in.`): the share
    # of the query's normalised words, numbers and (number, unit) pairs the title has
    "measure_coverage",
    "numbers_normalised",
    "number_units",
    *USER_FEATURES,
]
_DIGITS = re.compile(r"^\d")
_COLUMN = {name: j for j, name in enumerate(FEATURES)}
_RRF = FEATURES.index("rrf")
_BM25 = FEATURES.index("bm25")
_USER = FEATURES.index(USER_FEATURES[0])
# the columns of the features computed per candidate from set overlaps: FEATURES from
# title_terms to numbers_matched, then category_match (the order `_features` computes them in)
_OVERLAP = [
    _COLUMN[name]
    for name in (*FEATURES[_COLUMN["title_terms"] : _COLUMN["numbers_matched"] + 1], "category_match")
]
_NO_USER = (np.nan,) * len(USER_FEATURES)
_WEIGHTED = [_COLUMN[name] for name in ("idf_coverage", "last_term_in_title", "max_idf_missing")]
_MEASURES = [_COLUMN[name] for name in ("measure_coverage", "numbers_normalised", "number_units")]


class RankingFeatures(EngineState):
    """Candidates and their features (a part of `SearchEngine`)."""

    def _retrieve(
        self, q: Query, vecs: QueryVectors, depth: int | None = None
    ) -> tuple[np.ndarray, list[dict[int, tuple[float, int]]]]:
        """Candidates (sorted row ids) and, per retriever (bm25, main encoder, multilingual),
        {row: (score, rank)}; each retriever contributes its top `depth` (default: candidates)."""
        n = depth or self.candidates
        found = [_ranked(self.lexical_.search_terms(q.terms, n))]
        if q.text.strip():
            found.append(_ranked(self.semantic_.search_vectors(vecs.main[None, :], n)))
            if self.multilingual_ is not None and vecs.multilingual is not None:
                found.append(_ranked(self.multilingual_.search_vectors(vecs.multilingual[None, :], n)))
        cands = np.array(sorted(set().union(*found)), np.int64)
        while len(found) < 3:
            found.append({})
        return cands, found

    def _retrieve_kept(
        self,
        q: Query,
        vecs: QueryVectors | None,
        depth: int,
        allowed: np.ndarray | None,
        lexical: bool = False,
    ) -> tuple[list[dict[int, tuple[float, int]]], Seen]:
        """Per retriever (bm25, main encoder, multilingual; only BM25 when `lexical`) its top
        `depth` as {row: (score, rank)}, only the `allowed` rows when given (their ranks those of
        the whole list: the fused score of a row kept is the one it has unfiltered), and what
        the whole lists said (`Seen`)."""
        lists = [self.lexical_.search_terms(q.terms, depth)]
        if not lexical and q.text.strip() and vecs is not None:
            lists.append(self.semantic_.search_vectors(vecs.main[None, :], depth))
            if self.multilingual_ is not None and vecs.multilingual is not None:
                lists.append(self.multilingual_.search_vectors(vecs.multilingual[None, :], depth))
        found = [_ranked(r, allowed) for r in lists]
        return found + [{}] * (3 - len(found)), _seen(lists)

    def _features(
        self,
        q: Query,
        given: np.ndarray | None,
        leave_out: dict[int, tuple[float, float]] | None = None,
        vecs: QueryVectors | None = None,
        depth: int | None = None,
        profile: Profile | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Candidates (catalog rows) and their FEATURES; the user columns are NaN without a
        `profile` (see `_personal`). `leave_out[row] = (judgments, summed gain)` is taken off
        the product prior (a training query's own fold)."""
        if vecs is None:
            vecs = self.encode_queries([q.text])[0]
        cands, (lex_d, sem_d, ml_d) = self._retrieve(q, vecs, depth)
        if given is not None:
            cands = given
        n = len(cands)
        if n == 0:
            return cands, np.zeros((0, len(FEATURES)), np.float32)
        title_lex = self._title_scores(q, cands)
        cos = self.semantic_.embeddings_[cands] @ vecs.main
        sem_rank = None
        if self.multilingual_ is not None and vecs.multilingual is not None:
            cos_ml = self.multilingual_.embeddings_[cands] @ vecs.multilingual
            # MiniLM is English: its cosines on Chinese text are noise. The fused semantic rank
            # takes, per product, the encoder that reads both sides: MiniLM when query and title
            # are both free of Chinese, the multilingual encoder otherwise.
            latin = np.zeros(n, bool) if contains_cjk(q.text) else ~self._cjk[cands]
            applicable = np.where(latin, cos, cos_ml)
            sem_rank = np.empty(n, np.float32)
            sem_rank[np.argsort(-applicable, kind="stable")] = np.arange(1, n + 1)
        else:
            cos_ml = np.zeros(n, np.float32)
        c = self.candidates + 1
        terms = q.terms
        tset = set(terms)
        qbig = _bigrams(terms)
        qnorm = " ".join(terms)
        nums = {t for t in terms if _DIGITS.match(t)}
        # every lookup is vectorized (a row-by-row fill of x cost ~3 ms per query at 250
        # candidates, a dict lookup per candidate and retriever ~0.5 ms)
        bm, br = _lookup(lex_d, cands, (0.0, c))
        cr = _lookup(sem_d, cands, (0.0, c))[1]
        mr = _lookup(ml_d, cands, (0.0, c))[1]
        pc, ps = self.prior_count_[cands].copy(), self.prior_sum_[cands].copy()
        if leave_out is None and self.prior_fold_of_:  # served: a judged training query's own fold
            f = self.prior_fold_of_.get(query_key(q.text))  # (as searched: spelling corrected)
            leave_out = self.prior_folds_[f] if f is not None else None
        if leave_out:  # a training query's own judgments (a handful of rows)
            for j, d in enumerate(map(int, cands)):
                if d in leave_out:
                    pc[j], ps[j] = pc[j] - leave_out[d][0], ps[j] - leave_out[d][1]
        qw = {t: self._idf.get(t, self._idf_unseen) for t in dict.fromkeys(terms)}
        qt = list(qw)  # the distinct query terms, in query order
        # the set-overlap features, read for all candidates at once: title terms from the
        # postings (one binary search per query term), the text terms, bigrams and the exact
        # phrase from one gather of the candidates' rows (a few numpy scans per term), the
        # category per distinct category; no Python object per candidate (the row-at-a-time
        # reads were a third of a query's time at 100k products)
        has = _holding(qt, self._title_rows, cands)
        title = self._title_norm.gather(cands)
        nt, nb, nn = max(len(tset), 1), max(len(qbig), 1), max(len(nums), 1)
        overlap = np.empty((n, len(_OVERLAP)), np.float64)
        overlap[:, 0] = self._title_sizes[cands]
        overlap[:, 1] = has.sum(axis=1) / nt
        overlap[:, 2] = self._text_terms.gather(cands).count(qt) / nt
        overlap[:, 3] = title.count(f"{a} {b}" for a, b in qbig) / nb
        overlap[:, 4] = title.containing(qnorm) if qnorm else 0.0
        overlap[:, 5] = has[:, qt.index(terms[0])] if terms else 0.0
        overlap[:, 6] = has[:, [qt.index(t) for t in nums]].sum(axis=1) / nn if nums else -1.0
        overlap[:, 7] = self._category_terms.map(cands, lambda cat: len(tset & cat) / nt)
        x = np.empty((n, len(FEATURES)), np.float32)
        col = _COLUMN
        x[:, col["bm25"]], x[:, col["bm25_rank"]] = bm, br
        x[:, col["bm25_title"]] = _lookup(title_lex, cands, (0.0,))[0]
        x[:, col["cosine"]], x[:, col["cosine_rank"]] = cos, cr
        x[:, col["cosine_ml"]], x[:, col["cosine_ml_rank"]] = cos_ml, mr
        if sem_rank is None:
            x[:, col["rrf"]] = 1.0 / (self.rrf_k + br) + 1.0 / (self.rrf_k + cr)
        else:  # in float32, as the fused rank is (the values the ranker was trained on, bit for bit)
            x[:, col["rrf"]] = (1.0 / (self.rrf_k + br)).astype(np.float32) + 1.0 / (self.rrf_k + sem_rank)
        x[:, col["query_terms"]] = len(terms)
        x[:, _OVERLAP] = overlap
        x[:, col["prior_log_count"]] = np.log1p(np.maximum(pc, 0.0))
        x[:, col["prior_mean_gain"]] = np.where(pc > 0, (ps + 0.5) / (pc + 1.0), -1.0)
        x[:, col["log_popularity"]] = np.log1p(self.popularity_[cands])
        x[:, col["log_price"]] = self._profile_cols.log_price[cands]
        x[:, col["ctr"]] = self.ctr_[cands]
        x[:, _WEIGHTED] = _weighted_match(terms, qw, self._title_rows, cands, has)
        x[:, col["query_idf_max"]] = max(qw.values(), default=0.0)
        x[:, col["query_numbers"]] = len(nums)
        x[:, col["bm25_rel"]] = bm / bm.max() if bm.max() > 0 else 0.0
        x[:, col["cosine_rel"]] = cos - cos.max()
        fz = _fuzzy(q.text, self._title_proc.take(cands))
        x[:, col["fuzzy_token_set"]], x[:, col["fuzzy_partial"]] = fz
        x[:, col["fuzzy_rel"]] = fz[0] - fz[0].max()
        cover = x[:, col["idf_coverage"]]
        x[:, col["idf_coverage_rel"]] = cover - cover.max()
        bt = x[:, col["bm25_title"]]
        x[:, col["bm25_title_rel"]] = bt / bt.max() if bt.max() > 0 else 0.0
        x[:, col["full_matches"]] = np.log1p(np.count_nonzero(cover >= 0.999))
        x[:, _MEASURES] = self._title_measures.match(cands, measures(q.text))
        x[:, _USER:] = _NO_USER
        if profile is not None:
            x[:, _USER:] = profile.features(cands, self._profile_cols)
        return cands, x

    def profile(self, product_ids: list[str]) -> Profile | None:
        """A shopper's profile from the products they interacted with, oldest first (products
        not in the catalog are skipped; None when nothing is left)."""
        rows = [self._index[p] for p in product_ids if p in self._index]
        return Profile.of(rows, self._profile_cols)

    def _title_scores(self, q: Query, cands: np.ndarray) -> dict[int, float]:
        if not q.terms:
            return {}
        lx = self.lexical_
        query = lx._ix.parse_query(" ".join(q.terms), ["title"])
        hits = lx._searcher.search(query, max(self.candidates * 2, 10)).hits
        return {lx.row(a): float(s) for s, a in hits}


def _ranked(found: Results, allowed: np.ndarray | None = None) -> dict[int, tuple[float, int]]:
    """{row: (score, rank)} of a retriever's top list, the rank its place in the whole list;
    only the rows `allowed` (a catalog mask: a filter's) when given, so that a narrow filter's
    deep list costs a dict entry per product it keeps, not per product retrieved."""
    ids, scores = found.ids[0], found.scores[0]
    keep = ids >= 0
    if allowed is not None:
        keep &= allowed[np.where(keep, ids, 0)]
    at = np.flatnonzero(keep)
    return dict(zip(ids[at].tolist(), zip(scores[at].tolist(), (at + 1).tolist(), strict=True), strict=True))


class Seen(NamedTuple):
    """What a retrieval's whole top lists said, before a filter kept some of their rows (whether
    a keyword or the encoders matched is a question about the catalog, not the filter's rows)."""

    lexical: bool  # BM25 found a product
    keyword: bool  # one with a positive score
    main: bool  # the main encoder found a product
    multilingual: bool  # the multilingual encoder did
    best: float  # the best cosine of the main encoder (-1: it found none)
    best_ml: float  # of the multilingual encoder

    @property
    def semantic(self) -> bool:
        """Whether an encoder found a product."""
        return self.main or self.multilingual


def _seen(lists: Sequence[Results]) -> Seen:
    """`Seen` of the retrievers' top lists (bm25, main encoder, multilingual; missing: not run)."""
    got = [r.scores[0][r.ids[0] >= 0] for r in lists] + [np.zeros(0, np.float32)] * (3 - len(lists))
    lex, sem, ml = got
    return Seen(
        bool(len(lex)),
        bool((lex > 0).any()),
        bool(len(sem)),
        bool(len(ml)),
        float(sem.max()) if len(sem) else -1.0,
        float(ml.max()) if len(ml) else -1.0,
    )


def _lookup(found: Mapping[int, Any], cands: np.ndarray, missing: tuple[float, ...]) -> np.ndarray:
    """(k, n) float64: per candidate row, its value in `found` ({row: a float or a k-tuple, as
    a retriever's (score, rank)}), `missing` where it is not there; one sort of the found rows
    and one binary search instead of a dict lookup per candidate."""
    out = np.empty((len(missing), len(cands)), np.float64)
    out[:] = np.array(missing, np.float64)[:, None]
    if not found or not len(cands):
        return out
    rows = np.fromiter(found, np.int64, len(found))
    k = len(missing)
    values = chain.from_iterable(found.values()) if k > 1 else found.values()
    got = np.fromiter(values, np.float64, k * len(found)).reshape(len(found), k)
    order = np.argsort(rows)
    rows, got = rows[order], got[order]
    at = np.minimum(np.searchsorted(rows, cands), len(rows) - 1)
    hit = rows[at] == cands
    out[:, hit] = got[at[hit]].T
    return out


def _title_idf(title_terms: list[set[str]]) -> tuple[dict[str, float], float]:
    """BM25's IDF of every title term over the catalog's titles (a term in every title weighs
    ~0, a term in one title the most), and the IDF of a term no title has."""
    n = len(title_terms)
    df = Counter(t for ts in title_terms for t in ts)
    idf = {t: float(np.log1p((n - f + 0.5) / (f + 0.5))) for t, f in df.items()}
    return idf, float(np.log1p((n + 0.5) / 0.5))


def _postings(title_terms: list[set[str]]) -> dict[str, np.ndarray]:
    """Each title term's catalog rows, ascending (what `_weighted_match` looks candidates up in)."""
    rows: dict[str, list[int]] = {}
    for i, terms in enumerate(title_terms):
        for t in terms:
            rows.setdefault(t, []).append(i)
    return {t: np.array(r, np.int32) for t, r in rows.items()}


def _holding(terms: list[str], postings: Mapping[str, np.ndarray], cands: np.ndarray) -> np.ndarray:
    """(n, k) bool: whether each candidate row's title has each of the (distinct) `terms`, by
    one binary search per term in its postings (ascending rows)."""
    has = np.zeros((len(cands), len(terms)), bool)
    for j, t in enumerate(terms):
        rows = postings.get(t)
        if rows is not None and len(rows):
            has[:, j] = rows[np.minimum(np.searchsorted(rows, cands), len(rows) - 1)] == cands
    return has


def _weighted_match(
    terms: list[str],
    weight: dict[str, float],
    postings: Mapping[str, np.ndarray],
    cands: np.ndarray,
    has: np.ndarray | None = None,
) -> np.ndarray:
    """Per candidate row: the share of the query's IDF mass (`weight`, one entry per distinct
    term) its title holds (`for` and `in` weigh little, a brand or a product type much),
    whether the title has the query's last term (in product searches usually the product type:
    "deck over paint"), and the IDF of the rarest query term the title lacks (0 when it lacks
    none). One binary search per query term over the candidates (0.15 ms for 160 candidates
    and 4 terms; a set lookup per candidate and term cost 1.7 ms); `has`: `_holding` of the
    weighted terms when the caller has it already."""
    out = np.zeros((len(cands), 3), np.float64)
    total = sum(weight.values())
    if not terms or total <= 0 or not len(cands):
        return out
    qt = list(weight)
    w = np.fromiter(weight.values(), np.float64, len(qt))
    if has is None:
        has = _holding(qt, postings, cands)
    out[:, 0] = has @ w / total
    out[:, 1] = has[:, qt.index(terms[-1])]
    out[:, 2] = np.where(has, 0.0, w).max(axis=1)
    return out


def _fuzzy(query: str, titles: list[str]) -> np.ndarray:
    """(2, n): per title (already through rapidfuzz's `default_process`), the token-set ratio
    (1 when every query word is in the title, in any order) and the partial ratio (the best
    alignment of the query inside the title, which matches "2x4" to "2 x 4" and "deckover" to
    "deck over") with the query, in [0, 1]. rapidfuzz's C++ scorers: ~0.2 ms for 200 titles."""
    from rapidfuzz import fuzz, process, utils

    q = utils.default_process(query or "")
    if not q or not titles:
        return np.zeros((2, len(titles)), np.float32)
    return (
        np.vstack(
            [
                process.cdist([q], titles, scorer=scorer, workers=1)[0]
                for scorer in (fuzz.token_set_ratio, fuzz.partial_ratio)
            ]
        ).astype(np.float32)
        / 100.0
    )


def _bigrams(terms: list[str]) -> set[tuple[str, str]]:
    return set(zip(terms, terms[1:], strict=False))
