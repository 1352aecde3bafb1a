"""The search pipeline: lexical + semantic retrieval, hybrid fusion, LightGBM re-ranking.

    query -> analyze -> BM25 top-N (tantivy)  \
                     -> MiniLM top-N (faiss)  -> union
                     -> multilingual top-N    /  (when the catalog has Chinese text) -> features -> lambdarank -> top k
                                               \\-> reciprocal rank fusion when no ranker

The ranker is trained on relevance judgments (graded; unjudged candidates count 0) and kept only
if it beats the hybrid on held-out queries.
"""

from __future__ import annotations

import json
import re
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cachetools import LRUCache

from ..evaluation._metrics import graded_ndcg_at_k as ndcg_at_k
from ..models import Results
from ._analyze import MAX_QUERY_CHARS, analyze, contains_cjk, has_cjk
from ._clicks import ClickGroup, debias
from ._cross import CrossSettings, OnnxCrossEncoder
from ._finetune import FinetuneSettings
from ._personal import USER_FEATURES, Profile, ProfileColumns
from ._retrievers import LexicalRetriever, SearchCatalog, SemanticRetriever
from ._shopper import (
    Autocomplete,
    Filters,
    Speller,
    expand_synonyms,
    facets,
    price_and_stock_facets,
    sort_docs,
)

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
# How much of the pipeline a query gets, richest first (see `SearchEngine.query`): "full" is
# lexical + semantic retrieval, the ranker's features and LightGBM (and the cross-encoder when one
# was kept); "fused" skips the features and the ranker (reciprocal rank fusion of the retrievers:
# no feature building, one batched encoder call); "lexical" is BM25 alone (no encoder). A server
# under a deep queue steps down these levels to answer within its latency budget.
LEVELS = ("full", "fused", "lexical")
QUERY_CACHE_SIZE = 20_000  # corrected queries and query vectors kept per engine (LRU)
# a query with no keyword hit is a semantic match only when its best cosine beats what text
# with no meaning gets against this catalog: the highest top-1 cosine of NULL_QUERIES random
# letter strings (a meaningless query then passes with probability ~1 / (NULL_QUERIES + 1))
NULL_QUERIES = 64
_WEIGHTED = [_COLUMN[name] for name in ("idf_coverage", "last_term_in_title", "max_idf_missing")]


@dataclass
class Query:
    text: str  # as searched (after spelling correction)
    terms: list[str]  # analyzed, synonyms added
    corrected: str | None = None  # set when the spelling was corrected


class SearchEngine:
    def __init__(self, path: str | Path, candidates: int = 100, rrf_k: int = 60, max_depth: int = 10_000):
        self.path = Path(path)
        self.candidates = candidates
        self.max_depth = max_depth
        self.rrf_k = rrf_k
        self.ranker_: Any = None
        self.ranker_columns_: list[int] | None = None  # set when a loaded ranker knew other features
        self.cross_: OnnxCrossEncoder | None = None  # the kept cross-encoder, if any
        self.cross_top_ = 0  # how many of the first results it re-orders
        self.cross_weight_ = 1.0  # its weight in the blend with the pipeline's scores
        self.personalized_ = False  # the ranker splits on the shopper's profile features
        # query-time caches (bounded LRU, shared by the threads that query): the spelling fix of
        # a query's words and a query's vectors; long-tail queries repeat their words, and a page
        # evicted from the server's page cache is re-ranked without encoding the query again
        self._caches_lock = threading.Lock()
        self._spelling: LRUCache[str, str] = LRUCache(QUERY_CACHE_SIZE)
        self._vectors: LRUCache[str, QueryVectors] = LRUCache(QUERY_CACHE_SIZE)
        self._null_cosine: dict[str, float] = {}  # see `no_match_threshold`
        self._facet_codes: tuple[Any, ...] | None = None  # see `_facets`

    # -- building ---------------------------------------------------------------------------
    def build(
        self,
        catalog: SearchCatalog,
        popularity: np.ndarray | None = None,
        *,
        ctr: np.ndarray | None = None,
        synonyms: dict[str, list[str]] | None = None,
        query_log: list[str] | None = None,
        multilingual: bool | None = None,
        int8_above: int = 50_000,
    ) -> SearchEngine:
        """Index `catalog`. `multilingual` adds the multilingual encoder's index (Chinese and
        cross-language queries); by default it is added when the catalog has Chinese text.
        Catalogs over `int8_above` products are embedded with the int8 MiniLM (2.5x faster to
        build and to encode a query; semantic NDCG@10 on Home Depot 0.289 against 0.304).
        `popularity` and `ctr` (clicks per view, smoothed) are per catalog row. `build_seconds_`
        gives each step's time; the embedding steps overlap the others."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.catalog = catalog
        self.synonyms_ = dict(synonyms or {})
        if multilingual is None:
            multilingual = has_cjk(catalog.title)
        took: dict[str, float] = {}

        def embed() -> None:
            # the encoders and faiss run beside the single-threaded steps below (speller, BM25
            # index, match features: 12-18 s on 100k products), on the core those leave idle
            t0 = time.perf_counter()
            self.semantic_ = SemanticRetriever(
                "minilm-int8" if len(catalog) > int8_above else "minilm"
            ).index(catalog)
            took["semantic"], t0 = time.perf_counter() - t0, time.perf_counter()
            self.multilingual_ = SemanticRetriever("multilingual").index(catalog) if multilingual else None
            took["multilingual"] = time.perf_counter() - t0

        with ThreadPoolExecutor(1) as pool:
            embedding = pool.submit(embed)
            t0 = time.perf_counter()
            self.speller_ = Speller.from_texts(catalog.title + catalog.brand + catalog.category)
            self.autocomplete_ = Autocomplete.build(list(query_log or []), catalog.title)
            took["speller_and_autocomplete"], t0 = time.perf_counter() - t0, time.perf_counter()
            self.lexical_ = LexicalRetriever(self.path / "lexical").index(catalog)
            took["lexical"], t0 = time.perf_counter() - t0, time.perf_counter()
            self._prepare()
            took["match_features"] = time.perf_counter() - t0
            embedding.result()
        self.build_seconds_ = {k: round(v, 1) for k, v in took.items()}
        n = len(catalog)
        self.popularity_ = (
            np.zeros(n, np.float32) if popularity is None else np.asarray(popularity, np.float32)
        )
        self.ctr_ = np.full(n, np.nan, np.float32) if ctr is None else np.asarray(ctr, np.float32)
        self.prior_count_ = np.zeros(n, np.float32)
        self.prior_sum_ = np.zeros(n, np.float32)
        self._index = {p: i for i, p in enumerate(catalog.product_ids)}
        return self

    def _prepare(self) -> None:
        """Per-product analyzed terms for the match features."""
        c = self.catalog
        titles = [analyze(t) for t in c.title]
        self._title_terms = [set(t) for t in titles]
        self._title_bigrams = [_bigrams(t) for t in titles]
        self._title_norm = [" ".join(t) for t in titles]
        self._idf, self._idf_unseen = _title_idf(self._title_terms)
        self._title_rows = _postings(self._title_terms)
        self._cjk = np.array([contains_cjk(t) for t in c.title], bool)
        self._category_terms = [set(analyze(cat.replace(">", " "))) for cat in c.category]
        self._profile_cols = ProfileColumns.of(c)
        self._text_terms = [
            self._title_terms[i]
            | set(analyze(" ".join([c.brand[i], c.category[i], c.description[i], c.attributes[i]])))
            for i in range(len(c))
        ]

    def fit_ranker(
        self,
        queries: dict[str, str],
        judgments: dict[str, dict[str, float]],
        *,
        clicks: dict[str, ClickGroup] | None = None,
        holdout: float = 0.2,
        seed: int = 0,
        always_keep: bool = False,
        refit: bool = False,
    ) -> dict[str, Any]:
        """LightGBM lambdarank on judged queries (`judgments[qid][product_id] = gain >= 0`) and on
        search clicks (`clicks`, see `_clicks`), either or both.

        Served pages (clicks at known display positions) are turned into one graded group per
        query by the position-based click model (`_clicks.debias`: a click at position 5 counts
        for more than one at position 1, by the examination propensities estimated from the logs);
        logged searches (positions unknown) are one group per search. A fraction of the queries (of the judged ones
        when there are judgments, else of the click groups) is held out: early stopping and the
        keep-or-drop decision against the hybrid ranking (`always_keep` skips the decision:
        held-out clicks are themselves position-biased, so a debiased ranker can lose on them).
        With `refit`, a kept ranker is then refitted on every group, held-out ones included, for
        the chosen number of rounds (off by default: on Home Depot, stopping on a fifth of the
        training queries and refitting on all gave validation NDCG@10 0.5204, against 0.5227 for
        the ranker stopped on the validation queries themselves - no measured win).
        """
        import lightgbm as lgb

        clicks = clicks or {}
        qids, is_hold = _split_queries(queries, judgments, holdout, seed)
        train_q = [q for q in qids if not is_hold[q]]
        # product prior (judgments per product, their summed gain) from training queries only.
        # A training query's rows see it out of fold: without the judgments of its fold (1 of
        # PRIOR_FOLDS), so the ranker learns the prior as it will meet it for a new query; a
        # leave-one-out prior also tells the ranker the row's own label (it is lower exactly
        # when the left-out judgment was high)
        fold = {
            q: j % PRIOR_FOLDS for j, q in enumerate(np.random.default_rng(seed + 2).permutation(train_q))
        }
        in_fold: list[dict[int, tuple[float, float]]] = [{} for _ in range(PRIOR_FOLDS)]
        self.prior_count_[:], self.prior_sum_[:] = 0.0, 0.0  # a second fit counts afresh
        for q in train_q:
            for p, g in judgments[q].items():
                i = self._index.get(p)
                if i is not None:
                    self.prior_count_[i] += 1
                    self.prior_sum_[i] += g
                    n_in, g_in = in_fold[fold[q]].get(i, (0.0, 0.0))
                    in_fold[fold[q]][i] = (n_in + 1.0, g_in + g)
        # group id -> (query text, labels by catalog row, label scale, the shopper's profile)
        groups: dict[str, tuple[str, dict[int, float], float, Profile | None]] = {}
        for q in qids:  # judged: graded gains (0, 0.33, ..., 2) -> integer labels x3
            gains = {self._index[p]: g for p, g in judgments[q].items() if p in self._index}
            groups[q] = (queries[q], gains, 3.0, None)
        # served pages: one group per query, relevance corrected for position (see `_clicks`);
        # logged searches: one group per search, graded by the strongest action (1-3)
        served_rel, prop = debias({cid: c for cid, c in clicks.items() if c.source == "served"})
        # (pooled over shoppers: no profile); logged searches carry the shopper's history before
        # the search, so their groups get point-in-time profiles (personalized features)
        click_groups: dict[str, tuple[str, dict[int, float], Profile | None]] = {}
        for qtext, rel in sorted(served_rel.items()):
            top = max(rel.values())
            labels = {self._index[p]: 3.0 * v / top for p, v in rel.items() if p in self._index}
            click_groups["served:" + qtext] = (qtext, labels, None)
        for cid in sorted(clicks):
            c = clicks[cid]
            if c.source != "served" and c.query.strip():
                labels = {self._index[p]: v for p, v in c.labels.items() if p in self._index}
                click_groups["logged:" + cid] = (c.query, labels, self.profile(c.history))
        rng = np.random.default_rng(seed + 1)
        for gid, (text, labels, prof) in click_groups.items():
            if any(v > 0 for v in labels.values()):
                groups[gid] = (text, labels, 1.0, prof)
                is_hold[gid] = bool(not qids and rng.random() < holdout)
        rows: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        names = list(groups)
        vecs = self.encode_queries([groups[gid][0] for gid in names])
        for gid, v in zip(names, vecs, strict=True):
            text, labels, scale, prof = groups[gid]
            out = in_fold[fold[gid]] if gid in fold else None
            cands, x = self._features(self._query(text), None, leave_out=out, vecs=v, profile=prof)
            y = np.array([labels.get(int(d), 0.0) for d in cands], np.float32) * scale
            rows[gid] = (cands, x, np.clip(np.rint(y), 0, 30).astype(np.int32))

        def stack(gs: list[str]) -> tuple[np.ndarray, np.ndarray, list[int]]:
            gs = [gid for gid in gs if len(rows[gid][0]) and rows[gid][2].max() > 0]
            if not gs:
                return np.zeros((0, len(FEATURES)), np.float32), np.zeros(0, np.int32), []
            return (
                np.vstack([rows[gid][1] for gid in gs]),
                np.concatenate([rows[gid][2] for gid in gs]),
                [len(rows[gid][0]) for gid in gs],
            )

        train_g = [gid for gid in names if not is_hold[gid]]
        hold_g = [gid for gid in names if is_hold[gid]]
        xt, yt, gt = stack(train_g)
        info: dict[str, Any] = {
            "train_queries": len(train_q),
            "holdout_queries": len([gid for gid in hold_g if gid in judgments]),
            "click_groups": sum(1 for gid in groups if gid not in judgments),
            "personalized_groups": sum(1 for g in groups.values() if g[3] is not None),
            "served_pages": sum(1 for c in clicks.values() if c.source == "served"),
            "served_queries": len(served_rel),
            "holdout_label": "judgments" if qids else "clicks",
            "position_bias_correction": bool(served_rel),
            "propensity": {str(k): round(v, 4) for k, v in prop.items() if k <= 10} if served_rel else None,
        }
        if not gt:
            info.update(kept=False, skipped="no training group with a relevant or clicked product")
            self.ranker_ = None
            return info
        params = {
            "objective": "lambdarank",
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_data_in_leaf": 20,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "feature_fraction": 0.8,
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": 2,
            "verbose": -1,
            "metric": "ndcg",
            "eval_at": [10],
            # the gain of a label is the label (the default 2^label - 1 weighs a 6 as 9 x a 3),
            # as graded NDCG counts it: held-out NDCG@10 0.5189 -> 0.5221 on Home Depot
            "label_gain": list(range(31)),
        }
        train_set = lgb.Dataset(xt, yt, group=gt, feature_name=FEATURES)
        xh, yh, gh = stack(hold_g)
        kw: dict[str, Any] = {}
        if gh:
            kw = dict(
                valid_sets=[lgb.Dataset(xh, yh, group=gh, reference=train_set)],
                callbacks=[lgb.early_stopping(40, verbose=False)],
            )
        booster = lgb.train(params, train_set, num_boost_round=500, **kw)
        # held-out comparison on every held-out group (whole catalog, unjudged = 0)
        hyb, rer = [], []
        for gid in hold_g:
            cands, x, _ = rows[gid]
            labels = groups[gid][1]
            if len(cands) == 0:
                hyb.append(0.0)
                rer.append(0.0)
                continue
            hyb.append(ndcg_at_k([int(c) for c in cands[np.argsort(-x[:, _RRF], kind="stable")]], labels))
            pred = np.asarray(booster.predict(x))
            rer.append(ndcg_at_k([int(c) for c in cands[np.argsort(-pred, kind="stable")]], labels))
        info["holdout_ndcg@10"] = {
            "hybrid": float(np.mean(hyb)) if hyb else None,
            "reranked": float(np.mean(rer)) if rer else None,
        }
        info["best_iteration"] = int(booster.best_iteration or booster.current_iteration())
        info["kept"] = bool(always_keep or not hyb or np.mean(rer) > np.mean(hyb))
        if info["kept"] and refit and gh:
            # the kept model, refitted on the held-out groups too for the rounds early stopping
            # chose (their rows' prior never held their own judgments, as out of fold)
            xa, ya, ga = stack(train_g + hold_g)
            full = lgb.Dataset(xa, ya, group=ga, feature_name=FEATURES)
            booster = lgb.train(params, full, num_boost_round=info["best_iteration"])
            info["refit_groups"] = len(ga)
        self.ranker_ = _BoosterRanker(booster) if info["kept"] else None
        self.personalized_ = self.ranker_ is not None and self.ranker_.uses(USER_FEATURES)
        info["personalized"] = self.personalized_
        return info

    def finetune_encoder(
        self,
        queries: dict[str, str],
        judgments: dict[str, dict[str, float]],
        *,
        holdout: float = 0.2,
        seed: int = 0,
        settings: FinetuneSettings | None = None,
    ) -> dict[str, Any]:
        """Fine-tune MiniLM on the judged queries (see `_finetune`); when the tuned encoder beats
        the shipped one on the held-out queries (the same ones `fit_ranker` holds out, so the
        ranker's keep decision is not fooled), export it to ONNX in the search directory and
        re-embed the catalog with it. Call before `fit_ranker`."""
        from ..features._text_encoder import export_onnx, quantize_int8, shipped_model_dir
        from ._finetune import finetune_biencoder

        qids, is_hold = _split_queries(queries, judgments, holdout, seed)
        texts = {p: self.catalog.text(i) for p, i in self._index.items()}
        with tempfile.TemporaryDirectory() as tmp:
            tuned_dir = Path(tmp) / "tuned"
            info = finetune_biencoder(
                shipped_model_dir(),
                tuned_dir,
                queries,
                judgments,
                texts,
                [q for q in qids if not is_hold[q]],
                [q for q in qids if is_hold[q]],
                settings,
            )
            if info["kept"]:
                t0 = time.perf_counter()
                name = "encoder-tuned.onnx"
                export_onnx(tuned_dir, self.path / name)
                if self.semantic_.encoder == "minilm-int8":
                    name = quantize_int8(self.path / name, self.path / "encoder-tuned-int8.onnx").name
                self.semantic_ = SemanticRetriever(name, base=self.path).index(self.catalog)
                info["encoder"] = name
                info["export_and_index_seconds"] = round(time.perf_counter() - t0, 1)
        return info

    # -- querying ---------------------------------------------------------------------------
    def _query(self, text: str) -> Query:
        text = (text or "")[:MAX_QUERY_CHARS]
        fixed = self.correct(text) if text.strip() else text
        return Query(fixed, analyze(expand_synonyms(fixed, self.synonyms_)), fixed if fixed != text else None)

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
        """A results page: items (product id, score), facets over every matching candidate,
        the corrected query when spelling was fixed, the total number of candidates, how they
        were found (`match`), and the `stages` that ran.

        `match` is "keyword" when some product matches a query term (terms are ORed, so a query
        is already relaxed to any of its terms; the ranker weighs coverage), "semantic_only" when
        no product matches any term but the encoders find products closer to the query than
        meaningless text gets (`no_match_threshold`), and "none" otherwise: then `total` is 0 and
        the items are the most popular products (`"fallback": "popular"`; none when the shop has
        no popularity yet), never the nearest random vectors.

        `level` (see LEVELS) bounds the work: "full" runs every stage this engine has, "fused"
        ranks by reciprocal rank fusion of the retrievers, "lexical" by BM25 alone (the encoder
        still runs when nothing matches a keyword: that is the only way to tell a semantic match
        from none). `vecs`: the query's vectors when the caller encoded a batch of queries at once.

        With filters, retrieval goes deeper (x10, then x100, up to `max_depth` products per
        retriever) until the page is full: a filter never empties a page that the catalog
        could fill from deeper in the ranking. With a shopper's `profile` (see `profile()`), the
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
        while True:
            if level == "full":
                if vecs is None or (self.multilingual_ is not None and vecs.multilingual is None):
                    vecs = self.encode_queries([q.text])[0]
                encoded = True
                cands, x = self._features(q, None, vecs=vecs, depth=depth, profile=profile)
                keyword = bool(len(cands)) and bool((x[:, _BM25] > 0).any())
                semantic = self._semantic_match(x[:, _COLUMN["cosine"]], x[:, _COLUMN["cosine_ml"]])
                score = self._scores(x)
            else:
                if level == "lexical":
                    lex = _ranked(self.lexical_.search_terms(q.terms, depth))
                    found = [lex, {}, {}]
                    if not lex and q.text.strip():  # no keyword: only the encoder can tell
                        vecs = vecs or self.encode_queries([q.text], multilingual=None)[0]
                        encoded = True
                        _, found = self._retrieve(q, vecs, depth)
                else:
                    vecs = vecs or self.encode_queries([q.text], multilingual=None)[0]
                    if vecs.multilingual is not None and not contains_cjk(q.text):
                        # this level reads Latin queries with MiniLM alone, whether or not the
                        # multilingual vector happens to be cached: the page must not depend on it
                        vecs = QueryVectors(vecs.main, None)
                    encoded = True
                    _, found = self._retrieve(q, vecs, depth)
                cands, score, keyword, semantic = self._fuse(found, depth)
                if (
                    not keyword
                    and not semantic
                    and self.multilingual_ is not None
                    and q.text.strip()
                    and (vecs is None or vecs.multilingual is None)
                ):  # before saying "no match", the multilingual encoder too (as the full level does)
                    vecs = self.encode_queries([q.text])[0]
                    encoded = True
                    _, found = self._retrieve(q, vecs, depth)
                    cands, score, keyword, semantic = self._fuse(found, depth)
            if filtering and len(cands):
                keep = filters.mask(self.catalog, cands)  # type: ignore[union-attr]
                cands, score = cands[keep], score[keep]
                if level == "full":
                    x = x[keep]
            if not filtering or len(cands) >= offset + k or depth >= min(self.max_depth, len(self.catalog)):
                break
            depth = min(depth * 10, self.max_depth, len(self.catalog))
        if encoded and q.text.strip():
            stages.append("semantic")
        if not keyword and not semantic:
            return self._no_match(q, k, offset, filters, sort, stages, depth) | {"level": level}
        order_idx = np.argsort(-score, kind="stable")
        if level == "full":
            stages.append("rerank")
            if self.cross_ is not None and q.text.strip() and len(order_idx) >= 2:
                order_idx = self._cross_rerank(q.text, cands, order_idx, score)
                stages.append("cross_encoder")
        elif len(stages) > 1:
            stages.append("fusion")
        order = [int(cands[i]) for i in order_idx]
        by_doc = {int(c): float(s) for c, s in zip(cands, score, strict=True)}
        order = sort_docs(sort, order, self.catalog, self.popularity_)
        page = order[offset : offset + k]
        return {
            "items": [{"product_id": self.catalog.product_ids[d], "score": by_doc[d]} for d in page],
            "total": len(order),
            "facets": self._facets(cands),
            "corrected_query": q.corrected,
            "match": "keyword" if keyword else "semantic_only",
            "fallback": None,
            "depth": depth,
            "stages": stages,
            "level": level,
        }

    def _facets(self, docs: np.ndarray, top: int = 10) -> dict[str, Any]:
        """`facets(self.catalog, docs)`, the same counts in the same order, from per-product codes
        made once per engine (counting strings per candidate was ~40% of a BM25-only page)."""
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
        }

    def _fuse(
        self, found: list[dict[int, tuple[float, int]]], depth: int
    ) -> tuple[np.ndarray, np.ndarray, bool, bool]:
        """Candidates, their reciprocal-rank-fusion score (BM25 alone when the encoders did
        not run), whether a keyword matched and whether the encoders found a semantic match."""
        lex, sem, ml = found
        cands = np.array(sorted(set().union(*found)), np.int64)
        if not sem and not ml:  # BM25 alone: its own score orders (ties as tantivy ranked)
            score = np.array([lex[int(d)][0] for d in cands], np.float32)
            return cands, score, bool(lex), False
        c = depth + 1
        score = np.zeros(len(cands), np.float32)
        for ranks in found:
            if ranks:
                score += np.array([1.0 / (self.rrf_k + ranks.get(int(d), (0.0, c))[1]) for d in cands])
        best = max((s for s, _ in sem.values()), default=-1.0)
        best_ml = max((s for s, _ in ml.values()), default=-1.0)
        return cands, score, any(s > 0 for s, _ in lex.values()), self._semantic_match(best, best_ml)

    def _semantic_match(self, cosine: Any, cosine_ml: Any) -> bool:
        """Whether the best cosine (main encoder, or the multilingual one when it ran) beats what
        meaningless text gets against this catalog."""
        top = float(np.max(cosine, initial=-1.0))
        if top >= self.no_match_threshold("main"):
            return True
        if self.multilingual_ is None:
            return False
        top_ml = float(np.max(cosine_ml, initial=-1.0))
        return top_ml != 0.0 and top_ml >= self.no_match_threshold("multilingual")

    def no_match_threshold(self, which: str = "main") -> float:
        """The best cosine meaningless text gets against this catalog under one encoder ("main"
        or "multilingual"): the highest top-1 cosine of `NULL_QUERIES` random letter strings of
        one or two 5-10 letter words (seeded: the same catalog gets the same threshold).
        Computed once per loaded engine, on first use (one batched encode, ~0.1 s)."""
        got = self._null_cosine.get(which)
        if got is not None:
            return got
        rng = np.random.default_rng(20261201)
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))

        def word() -> str:
            return "".join(rng.choice(letters, int(rng.integers(5, 11))))

        texts = [" ".join(word() for _ in range(int(rng.integers(1, 3)))) for _ in range(NULL_QUERIES)]
        retriever = self.semantic_ if which == "main" else self.multilingual_
        if retriever is None:
            return float("inf")
        found = retriever.search_vectors(retriever.encode_queries(texts), 1)  # as queries are
        value = float(found.scores[:, 0].max()) if found.scores.size else float("inf")
        with self._caches_lock:
            self._null_cosine[which] = value
        return value

    def _no_match(
        self, q: Query, k: int, offset: int, filters: Filters | None, sort: str, stages: list[str], depth: int
    ) -> dict[str, Any]:
        """The page of a query that matches nothing: no results, and the shop's most popular
        products (those passing the filters) as a fallback that says it is one."""
        pop = np.asarray(self.popularity_, np.float64)
        fallback: list[int] = []
        if len(pop) and float(pop.max()) > 0:
            top = np.argsort(-pop, kind="stable")[: max(1000, offset + k)]
            top = top[pop[top] > 0]
            if filters is not None and filters.active():
                top = top[filters.mask(self.catalog, top)]
            fallback = sort_docs(sort, [int(d) for d in top], self.catalog, self.popularity_)[
                offset : offset + k
            ]
        return {
            "items": [{"product_id": self.catalog.product_ids[d], "score": 0.0} for d in fallback],
            "total": 0,
            "facets": facets(self.catalog, np.zeros(0, np.int64)),
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

    def encode_queries(self, texts: list[str], multilingual: bool | None = True) -> list[QueryVectors]:
        """Each query's embedding under the main encoder and, when the catalog has one, the
        multilingual encoder (batched: one encoder call per list, for the texts not cached).
        `multilingual=None`: that encoder only for queries with Chinese text (the "fused" and
        "lexical" levels: MiniLM reads the others; the full pipeline's features need both)."""
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
        return [got[t] for t in clean]  # type: ignore[misc]

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
        # array lookups are vectorized; only the set-overlap features need a step per candidate
        # (a row-by-row fill of x cost ~3 ms per query at 250 candidates)
        rows = [int(d) for d in cands]
        bm, br = np.array([lex_d.get(d, (0.0, c)) for d in rows], np.float64).reshape(n, 2).T
        cr = np.array([sem_d[d][1] if d in sem_d else c for d in rows], np.float64)
        mr = np.array([ml_d.get(d, (0.0, c))[1] for d in rows], np.float64)
        pc, ps = self.prior_count_[cands].copy(), self.prior_sum_[cands].copy()
        if leave_out:
            for j, d in enumerate(rows):
                if d in leave_out:
                    pc[j], ps[j] = pc[j] - leave_out[d][0], ps[j] - leave_out[d][1]
        nt, nb, nn = max(len(tset), 1), max(len(qbig), 1), max(len(nums), 1)
        first = terms[0] if terms else None
        overlap = np.array(
            [
                (
                    len(self._title_terms[d]),
                    len(tset & self._title_terms[d]) / nt,
                    len(tset & self._text_terms[d]) / nt,
                    len(qbig & self._title_bigrams[d]) / nb,
                    float(bool(qnorm) and qnorm in self._title_norm[d]),
                    float(first is not None and first in self._title_terms[d]),
                    len(nums & self._title_terms[d]) / nn if nums else -1.0,
                    len(tset & self._category_terms[d]) / nt,
                )
                for d in rows
            ],
            np.float64,
        ).reshape(n, len(_OVERLAP))
        x = np.empty((n, len(FEATURES)), np.float32)
        col = _COLUMN
        x[:, col["bm25"]], x[:, col["bm25_rank"]] = bm, br
        x[:, col["bm25_title"]] = [title_lex.get(d, 0.0) for d in rows]
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
        qw = {t: self._idf.get(t, self._idf_unseen) for t in dict.fromkeys(terms)}
        x[:, _WEIGHTED] = _weighted_match(terms, qw, self._title_rows, cands)
        x[:, col["query_idf_max"]] = max(qw.values(), default=0.0)
        x[:, col["query_numbers"]] = len(nums)
        x[:, col["bm25_rel"]] = bm / bm.max() if bm.max() > 0 else 0.0
        x[:, col["cosine_rel"]] = cos - cos.max()
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
        order = self._cross_rerank(q.text, cands, np.argsort(-score, kind="stable"), score)[:k]
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

    def fit_cross_encoder(
        self,
        queries: dict[str, str],
        judgments: dict[str, dict[str, float]],
        *,
        holdout: float = 0.2,
        seed: int = 0,
        settings: CrossSettings | None = None,
    ) -> dict[str, Any]:
        """Fine-tune a cross-encoder from MiniLM on the training queries' judged pairs (and their
        retrieved, unjudged candidates as negatives) and keep it as the last stage, re-ordering
        the first `settings.top` results, only when that beats the current pipeline's order on
        the held-out queries (the split `fit_ranker` uses). Call after `fit_ranker`."""
        from ..features._text_encoder import quantize_int8, shipped_model_dir
        from ._cross import export_cross_onnx, train_cross_encoder

        st = settings or CrossSettings(seed=seed)
        self.cross_ = None
        qids, is_hold = _split_queries(queries, judgments, holdout, seed)
        rng = np.random.default_rng(st.seed)
        top_gain = max((g for q in qids for g in judgments[q].values()), default=0.0)
        pairs: list[tuple[str, str, float]] = []
        hold: list[tuple[str, list[int], np.ndarray, dict[int, float]]] = []
        for q in qids:
            gains = {self._index[p]: g for p, g in judgments[q].items() if p in self._index}
            if is_hold[q]:
                found = self.search(queries[q], k=st.top)
                ranked = [self._index[p] for p, _ in found]
                hold.append((queries[q], ranked, np.array([s for _, s in found], float), gains))
                continue
            if top_gain <= 0:
                continue
            pairs += [(queries[q], self.catalog.text(d), min(1.0, g / top_gain)) for d, g in gains.items()]
            unjudged = [
                self._index[p] for p, _ in self.search(queries[q], k=20) if self._index[p] not in gains
            ]
            for d in rng.permutation(unjudged)[: st.negatives_per_query]:
                pairs.append((queries[q], self.catalog.text(int(d)), 0.0))
        model, info = train_cross_encoder(shipped_model_dir(), pairs, st)
        info.pop("settings", None)
        info["kept"] = False
        if model is None or not hold:
            info.setdefault("skipped", "no held-out query")
            return info
        # judged as it will be served: the exported, int8-quantized graph through onnxruntime
        fp32 = export_cross_onnx(model, self.path / "cross-encoder-fp32.onnx")
        path = quantize_int8(fp32, self.path / "cross-encoder.onnx")
        for f in (fp32, fp32.with_suffix(".tokenizer.json")):
            f.unlink(missing_ok=True)
        served = OnnxCrossEncoder(path, st.max_tokens)
        # the blend weight is chosen on one half of the held-out queries and the keep decision
        # made on the other half, so the choice of the weight does not flatter the decision
        ndcg = np.zeros((len(hold), len(BLEND_WEIGHTS)))
        for r, (text, ranked, pipe, gains) in enumerate(hold):
            ce = served.score(text, [self.catalog.text(d) for d in ranked])
            for c, w in enumerate(BLEND_WEIGHTS):
                ndcg[r, c] = ndcg_at_k([ranked[i] for i in _blend(pipe, ce, w)], gains)
        choose, decide = (ndcg[0::2], ndcg[1::2]) if len(hold) >= 2 else (ndcg, ndcg)
        best = 1 + int(np.argmax(choose[:, 1:].mean(axis=0)))  # column 0 is the pipeline itself
        weight = BLEND_WEIGHTS[best]
        info["holdout_ndcg@10"] = {
            "pipeline": float(ndcg[:, 0].mean()),
            "cross_encoder": float(ndcg[:, -1].mean()),
            "blend": float(ndcg[:, best].mean()),
            "blend_weight": weight,
            "decision_half": {"pipeline": float(decide[:, 0].mean()), "blend": float(decide[:, best].mean())},
        }
        info["kept"] = bool(decide[:, best].mean() > decide[:, 0].mean())
        if info["kept"]:
            self.cross_, self.cross_top_, self.cross_weight_ = served, st.top, weight
        else:
            for f in (path, path.with_suffix(".tokenizer.json")):
                f.unlink(missing_ok=True)
        return info

    def search_many(
        self, texts: list[str], k: int = 10, candidates: list[list[str] | None] | None = None
    ) -> list[list[tuple[str, float]]]:
        clean = [(t or "")[:MAX_QUERY_CHARS] for t in texts]
        vecs = self.encode_queries(clean)
        cands = candidates or [None] * len(texts)
        return [self.search(t, k, c, vecs=v) for t, c, v in zip(clean, cands, vecs, strict=True)]

    # -- persistence ------------------------------------------------------------------------
    def save(self) -> None:
        self.semantic_.save(self.path / "embeddings.npy")
        if self.multilingual_ is not None:
            self.multilingual_.save(self.path / "embeddings_multilingual.npy")
        np.savez(
            self.path / "priors.npz",
            count=self.prior_count_,
            sum=self.prior_sum_,
            popularity=self.popularity_,
            ctr=self.ctr_,
        )
        c = self.catalog
        (self.path / "catalog.json").write_text(
            json.dumps(
                {
                    f: getattr(c, f)
                    for f in ("product_ids", "title", "brand", "category", "description", "attributes")
                },
                ensure_ascii=False,
            )
        )
        np.savez(self.path / "catalog_arrays.npz", price=np.asarray(c.price), in_stock=np.asarray(c.in_stock))
        if self.ranker_ is not None:
            self.ranker_.booster_.save_model(str(self.path / "ranker.txt"))
        (self.path / "search.json").write_text(
            json.dumps(
                {
                    "candidates": self.candidates,
                    "rrf_k": self.rrf_k,
                    "ranker": self.ranker_ is not None,
                    "features": FEATURES,
                    "cross_encoder": {
                        "file": self.cross_.path.name,
                        "top": self.cross_top_,
                        "tokens": self.cross_.max_tokens,
                        "weight": self.cross_weight_,
                    }
                    if self.cross_ is not None
                    else None,
                }
            )
        )
        (self.path / "shopper.json").write_text(
            json.dumps(
                {
                    "synonyms": self.synonyms_,
                    "vocabulary": dict(self.speller_.vocabulary),
                    "autocomplete": self.autocomplete_.phrases,
                },
                ensure_ascii=False,
            )
        )

    @classmethod
    def load(cls, path: str | Path) -> SearchEngine:
        import lightgbm as lgb

        path = Path(path)
        meta = json.loads((path / "search.json").read_text())
        eng = cls(path, meta["candidates"], meta["rrf_k"])
        cat = json.loads((path / "catalog.json").read_text())
        arr = np.load(path / "catalog_arrays.npz")
        catalog = SearchCatalog(**cat, price=arr["price"], in_stock=arr["in_stock"])
        pri = np.load(path / "priors.npz")
        eng.catalog = catalog
        eng.lexical_ = LexicalRetriever.load(path / "lexical")
        eng.semantic_ = SemanticRetriever.load(path / "embeddings.npy")
        ml = path / "embeddings_multilingual.npy"
        eng.multilingual_ = SemanticRetriever.load(ml) if ml.exists() else None
        eng._prepare()
        shop = json.loads((path / "shopper.json").read_text())
        eng.synonyms_ = shop["synonyms"]
        eng.speller_ = Speller(Counter(shop["vocabulary"]))
        eng.autocomplete_ = Autocomplete([(p, float(s)) for p, s in shop["autocomplete"]])
        eng.prior_count_, eng.prior_sum_, eng.popularity_ = pri["count"], pri["sum"], pri["popularity"]
        eng.ctr_ = pri["ctr"] if "ctr" in pri.files else np.full(len(catalog), np.nan, np.float32)
        eng._index = {p: i for i, p in enumerate(catalog.product_ids)}
        if meta["ranker"]:
            eng.ranker_ = _BoosterRanker(lgb.Booster(model_file=str(path / "ranker.txt")))
            # bundles made before a feature was added: the ranker reads the columns it knew
            saved = meta.get("features") or [f for f in FEATURES if f not in ("cosine_ml", "cosine_ml_rank")]
            if saved != FEATURES:
                eng.ranker_columns_ = [FEATURES.index(f) for f in saved]
            eng.personalized_ = eng.ranker_.uses(USER_FEATURES)
        if meta.get("cross_encoder"):
            ce = meta["cross_encoder"]
            eng.cross_ = OnnxCrossEncoder(path / ce["file"], ce["tokens"])
            eng.cross_top_ = ce["top"]
            eng.cross_weight_ = float(ce.get("weight", 1.0))  # bundles before the blend: alone
        return eng


class _BoosterRanker:
    """A loaded LightGBM booster with the `predict` the engine calls."""

    def __init__(self, booster: Any):
        self.booster_ = booster

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster_.predict(x, num_threads=1))

    def uses(self, features: list[str]) -> bool:
        """Whether any split of the model is on one of `features`."""
        split = dict(
            zip(self.booster_.feature_name(), self.booster_.feature_importance("split"), strict=True)
        )
        return any(split.get(f, 0) > 0 for f in features)


# folds of the training queries for the out-of-fold product prior (see `fit_ranker`)
PRIOR_FOLDS = 5
# cross-encoder weights tried in its blend with the pipeline's scores (0 = the pipeline alone)
BLEND_WEIGHTS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def _blend(pipeline: np.ndarray, cross: np.ndarray, weight: float) -> np.ndarray:
    """Positions of a result head ordered by (1 - weight) z(pipeline) + weight z(cross), z
    standardizing within the head (the two scores live on different scales)."""

    def z(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, float)
        return (x - x.mean()) / max(float(x.std()), 1e-9)

    return np.argsort(-((1.0 - weight) * z(pipeline) + weight * z(cross)), kind="stable")


def _split_queries(
    queries: dict[str, str], judgments: dict[str, dict[str, float]], holdout: float, seed: int
) -> tuple[list[str], dict[str, bool]]:
    """Judged queries with text, and which are held out (the same draw for fine-tuning and the
    ranker, so neither learns from the other's validation queries)."""
    qids = sorted(q for q in judgments if q in queries and queries[q].strip())
    rng = np.random.default_rng(seed)
    return qids, {q: bool(rng.random() < holdout) for q in qids}


@dataclass
class QueryVectors:
    main: np.ndarray
    multilingual: np.ndarray | None = None


def _ranked(found: Results) -> dict[int, tuple[float, int]]:
    return {
        int(d): (float(s), r + 1)
        for r, (d, s) in enumerate(zip(found.ids[0], found.scores[0], strict=True))
        if d >= 0
    }


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


def _weighted_match(
    terms: list[str], weight: dict[str, float], postings: dict[str, np.ndarray], cands: np.ndarray
) -> np.ndarray:
    """Per candidate row: the share of the query's IDF mass (`weight`, one entry per distinct
    term) its title holds (`for` and `in` weigh little, a brand or a product type much),
    whether the title has the query's last term (in product searches usually the product type:
    "deck over paint"), and the IDF of the rarest query term the title lacks (0 when it lacks
    none). One binary search per query term over the candidates (0.15 ms for 160 candidates
    and 4 terms; a set lookup per candidate and term cost 1.7 ms)."""
    out = np.zeros((len(cands), 3), np.float64)
    total = sum(weight.values())
    if not terms or total <= 0 or not len(cands):
        return out
    qt = list(weight)
    w = np.fromiter(weight.values(), np.float64, len(qt))
    has = np.zeros((len(cands), len(qt)), bool)
    for j, t in enumerate(qt):
        rows = postings.get(t)
        if rows is not None:
            has[:, j] = rows[np.minimum(np.searchsorted(rows, cands), len(rows) - 1)] == cands
    out[:, 0] = has @ w / total
    out[:, 1] = has[:, qt.index(terms[-1])]
    out[:, 2] = np.where(has, 0.0, w).max(axis=1)
    return out


def _bigrams(terms: list[str]) -> set[tuple[str, str]]:
    return set(zip(terms, terms[1:], strict=False))


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
