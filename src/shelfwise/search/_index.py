"""Building, saving and loading the search indexes: tantivy (BM25), the MiniLM and (for
catalogs with Chinese text) multilingual embeddings with faiss, the speller and autocomplete,
the per-product match tables of the ranking features, the product priors, the kept ranker and
cross-encoder."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

import numpy as np
from rapidfuzz import utils

from ._analyze import analyze, contains_cjk, has_cjk
from ._cross import OnnxCrossEncoder
from ._features import FEATURES, _bigrams, _postings, _title_idf
from ._personal import USER_FEATURES, ProfileColumns
from ._retrievers import LexicalRetriever, SearchCatalog, SemanticRetriever
from ._shopper import Autocomplete, Speller
from ._state import EngineState
from ._units import measures


class SearchIndex(EngineState):
    """Building and persistence (a part of `SearchEngine`)."""

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
    ) -> Self:
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
        self._title_proc = [utils.default_process(t) for t in c.title]  # for `_fuzzy`
        self._title_measures = [measures(t) for t in c.title]  # for `_measure_match`
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
    def load(cls, path: str | Path) -> Self:
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
