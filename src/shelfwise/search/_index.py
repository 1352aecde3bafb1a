"""Building, saving and loading the search indexes: tantivy (BM25), the MiniLM and (for
catalogs with Chinese text) multilingual embeddings with faiss, the speller and autocomplete,
the per-product match tables of the ranking features, the product priors, the kept ranker and
cross-encoder."""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

import numpy as np
from rapidfuzz import utils

from ._analyze import Analyzer, contains_cjk, has_cjk, load_segmenter
from ._attributes import AttributeIndex
from ._compact import (
    TABLES_DIR,
    TABLES_VERSION,
    Coded,
    Postings,
    RowIndex,
    Strings,
    TermValues,
    Vocabulary,
    load_array,
    save_array,
)
from ._cross import OnnxCrossEncoder
from ._features import FEATURES, _postings, _title_idf
from ._personal import USER_FEATURES, ProfileColumns, top_category
from ._retrievers import LexicalRetriever, SearchCatalog, SemanticRetriever
from ._shopper import MIN_QUERY_SHOPPERS, QUERY_SCORE, Autocomplete, Speller
from ._state import EngineState
from ._units import MeasureRows, encode_measures, measures

_CATALOG_TEXT = ("product_ids", "title", "brand", "category", "description", "attributes")


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
        language: str | None = None,
    ) -> Self:
        """Index `catalog`. `multilingual` adds the multilingual encoder's index (Chinese and
        cross-language queries); by default it is added when the catalog has Chinese text.
        Catalogs over `int8_above` products are embedded with the int8 MiniLM (2.5x faster to
        build and to encode a query; semantic NDCG@10 on Home Depot 0.289 against 0.304).
        `popularity` and `ctr` (clicks per view, smoothed) are per catalog row. `build_seconds_`
        gives each step's time; the embedding steps overlap the others. `language` ("de",
        "french", ...; None or "auto": detected from the catalog's text, see
        `_analyze.detect_language`) picks the keyword analysis (`analyzer_`, saved with the index)."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.catalog = catalog
        self.synonyms_ = dict(synonyms or {})
        self.analyzer_ = Analyzer.for_catalog(
            list(catalog.title) + list(catalog.category) + list(catalog.description), language
        )
        if multilingual is None:
            multilingual = has_cjk(catalog.title)
        took: dict[str, float] = {}

        def embed() -> None:
            # the encoders and faiss run beside the single-threaded steps below (speller, BM25
            # index, match features: 12-18 s on 100k products), on the core those leave idle
            t0 = time.perf_counter()
            self.semantic_ = SemanticRetriever(
                "minilm-int8pc" if len(catalog) > int8_above else "minilm"
            ).index(catalog)
            took["semantic"], t0 = time.perf_counter() - t0, time.perf_counter()
            self.multilingual_ = SemanticRetriever("multilingual").index(catalog) if multilingual else None
            took["multilingual"] = time.perf_counter() - t0

        with ThreadPoolExecutor(1) as pool:
            embedding = pool.submit(embed)
            t0 = time.perf_counter()
            self.speller_ = Speller.from_texts(catalog.title + catalog.brand + catalog.category)
            self.autocomplete_ = Autocomplete.build(
                list(query_log or []), catalog.title, correct=self.speller_.correct
            )
            took["speller_and_autocomplete"], t0 = time.perf_counter() - t0, time.perf_counter()
            self.lexical_ = LexicalRetriever(self.path / "lexical", analyzer=self.analyzer_).index(catalog)
            took["lexical"], t0 = time.perf_counter() - t0, time.perf_counter()
            self._prepare()
            self.attributes_ = AttributeIndex.of(catalog.attribute_json)
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
        """Per-product analyzed terms for the match features, as the compact tables a loaded
        engine memory-maps (see `_compact`); `save` writes them."""
        c = self.catalog
        analyze = self.analyzer_.analyze
        titles = [analyze(t) for t in c.title]
        title_sets = [set(t) for t in titles]
        idf, self._idf_unseen = _title_idf(title_sets)
        vocabulary = Vocabulary.of(idf)
        category_terms: dict[str, str] = {}
        for cat in c.category:
            if cat not in category_terms:
                category_terms[cat] = " ".join(sorted(set(analyze(cat.replace(">", " ")))))
        text_terms = [
            title_sets[i]
            | set(analyze(" ".join([c.brand[i], c.category[i], c.description[i], c.attributes[i]])))
            for i in range(len(c))
        ]
        price = np.asarray(c.price, float)
        self._use_tables(
            {
                "title_norm": Strings.of(" ".join(t) for t in titles),
                "title_sizes": np.array([len(s) for s in title_sets], np.int32),  # distinct terms
                "title_proc": Strings.of(utils.default_process(t) for t in c.title),  # for `_fuzzy`
                "title_measures": Strings.of(
                    encode_measures(measures(t)) for t in c.title
                ),  # `MeasureRows.match`
                "text_terms": Strings.of(" ".join(sorted(s)) for s in text_terms),
                "category_terms": Coded.of(category_terms[cat] for cat in c.category),
                "vocabulary": vocabulary.terms,
                "idf": np.array([idf[t] for t in vocabulary.terms], np.float64),
                "idf_unseen": np.array([self._idf_unseen], np.float64),
                "postings": Postings.of(vocabulary, _postings(title_sets)),
                **_text_postings(text_terms),
                "cjk": np.array([contains_cjk(t) for t in c.title], bool),
                "profile_category": Coded.of(v.strip().lower() for v in c.category),
                "profile_top": Coded.of(top_category(v) for v in c.category),
                "profile_brand": Coded.of(v.strip().lower() for v in c.brand),
                "log_price": np.where(np.isfinite(price) & (price >= 0), np.log1p(np.abs(price)), np.nan),
                "product_order": RowIndex.of(c.product_ids).order,  # `load`'s product id -> row
            }
        )

    def _use_tables(self, t: dict[str, Any]) -> None:
        """Point the match features' lookups at the tables (built by `_prepare` or mapped by
        `load`): the features read a query's candidates' rows from them at once (`Strings.gather`)."""
        self._tables = t
        self._title_norm = t["title_norm"]
        self._title_sizes = t["title_sizes"]
        self._title_proc = t["title_proc"]
        self._title_measures = MeasureRows(t["title_measures"])
        self._text_terms = t["text_terms"]
        cat = t["category_terms"]
        self._category_terms = Coded(cat.codes, cat.values, lambda s: frozenset(s.split()))
        vocabulary = Vocabulary(t["vocabulary"])
        self._idf = TermValues(vocabulary, t["idf"])
        self._idf_unseen = float(t["idf_unseen"][0])
        # a Mapping like the dict of arrays `_features._weighted_match` is typed for
        self._title_rows = Postings(vocabulary, t["postings"].indptr, t["postings"].rows)  # type: ignore[assignment]
        # every product holding a term in any field BM25 reads (what `total` and the facets count)
        self._text_rows = Postings(
            Vocabulary(t["text_vocabulary"]), t["text_postings"].indptr, t["text_postings"].rows
        )
        self._cjk = t["cjk"]
        self._profile_cols = ProfileColumns(
            t["profile_category"], t["profile_top"], t["profile_brand"], t["log_price"]
        )

    def _save_tables(self) -> None:
        """The catalog's columns and the match tables as `.npy` files under `tables/`, which
        `load` memory-maps (written to a temporary folder, then renamed: a server loading the
        previous tables never reads half-written ones)."""
        folder = self.path / TABLES_DIR
        tmp = self.path / f".{TABLES_DIR}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        c = self.catalog
        for f in _CATALOG_TEXT:
            col = getattr(c, f)
            (col if isinstance(col, Strings) else Strings.of(col)).save(tmp, f"catalog.{f}")
        save_array(tmp, "catalog.price", np.asarray(c.price, np.float64))
        save_array(tmp, "catalog.in_stock", np.asarray(c.in_stock, bool))
        save_array(tmp, "catalog.stock_known", np.asarray(c.stock_known, bool))
        attrs = c.attribute_json
        (attrs if isinstance(attrs, Strings) else Strings.of(attrs)).save(tmp, "catalog.attribute_json")
        for name, part in self._tables.items():
            if isinstance(part, Strings | Coded):
                part.save(tmp, name)
            elif isinstance(part, Postings):
                save_array(tmp, f"{name}.indptr", part.indptr)
                save_array(tmp, f"{name}.rows", part.rows)
            else:
                save_array(tmp, name, np.asarray(part))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)

    def _load_tables(self) -> bool:
        """Map the tables `_save_tables` wrote (False when this index has none: a bundle from
        before they were kept, or of another layout, whose tables are then built again)."""
        folder = self.path / TABLES_DIR
        meta = json.loads((self.path / "search.json").read_text())
        if meta.get("tables") != TABLES_VERSION or not folder.is_dir():
            return False
        cat = {f: Strings.load(folder, f"catalog.{f}") for f in _CATALOG_TEXT}
        attributes = (folder / "catalog.attribute_json.offsets.npy").exists()
        self.catalog = SearchCatalog(
            **cat,  # type: ignore[arg-type]
            price=load_array(folder, "catalog.price"),
            in_stock=load_array(folder, "catalog.in_stock"),
            # (tables saved before it said nothing of unknown stock: known, as they read it)
            stock_known=load_array(folder, "catalog.stock_known")
            if (folder / "catalog.stock_known.npy").exists()
            else None,
            # (tables saved before it: no attribute filters or facets until the next training)
            attribute_json=Strings.load(folder, "catalog.attribute_json") if attributes else [],
        )
        self.has_attribute_index_ = attributes
        t: dict[str, Any] = {}
        for name in ("title_norm", "title_proc", "title_measures", "text_terms", "vocabulary"):
            t[name] = Strings.load(folder, name)
        if (folder / "text_postings.rows.npy").exists():
            t["text_vocabulary"] = Strings.load(folder, "text_vocabulary")
            t["text_postings"] = Postings(
                Vocabulary(t["text_vocabulary"]),
                load_array(folder, "text_postings.indptr"),
                load_array(folder, "text_postings.rows"),
            )
        else:  # tables saved before it was kept: from the rows' text terms (once per load)
            t.update(_text_postings([set(v.split()) for v in t["text_terms"]]))
        for name in ("category_terms", "profile_category", "profile_top", "profile_brand"):
            t[name] = Coded.load(folder, name)
        for name in ("idf", "idf_unseen", "cjk", "log_price", "product_order"):
            t[name] = load_array(folder, name)
        vocabulary = Vocabulary(t["vocabulary"])
        t["postings"] = Postings(
            vocabulary, load_array(folder, "postings.indptr"), load_array(folder, "postings.rows")
        )
        if (folder / "title_sizes.npy").exists():
            t["title_sizes"] = load_array(folder, "title_sizes")
        else:  # tables saved before it was kept: a row's distinct title terms are its postings
            t["title_sizes"] = np.bincount(t["postings"].rows, minlength=len(cat["title"])).astype(np.int32)
        self._use_tables(t)
        return True

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
        # the judged training queries' own folds of the prior (see `prior_fold_of_`)
        (self.path / "prior_folds.json").write_text(
            json.dumps(
                {
                    "fold_of": self.prior_fold_of_,
                    "folds": [[[int(r), n, g] for r, (n, g) in f.items()] for f in self.prior_folds_],
                },
                ensure_ascii=False,
            )
        )
        c = self.catalog
        (self.path / "catalog.json").write_text(
            json.dumps(
                {f: list(getattr(c, f)) for f in _CATALOG_TEXT},
                ensure_ascii=False,
            )
        )
        np.savez(
            self.path / "catalog_arrays.npz",
            price=np.asarray(c.price),
            in_stock=np.asarray(c.in_stock),
            stock_known=np.asarray(c.stock_known),
        )
        self._save_tables()
        if self.ranker_ is not None:
            self.ranker_.booster_.save_model(str(self.path / "ranker.txt"))
        (self.path / "search.json").write_text(
            json.dumps(
                {
                    "candidates": self.candidates,
                    "rrf_k": self.rrf_k,
                    "ranker": self.ranker_ is not None,
                    "features": FEATURES,
                    "tables": TABLES_VERSION,
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
                    "autocomplete_masked_left_out": True,
                    "autocomplete_min_shoppers": MIN_QUERY_SHOPPERS,
                },
                ensure_ascii=False,
            )
        )

    @classmethod
    def load(cls, path: str | Path) -> Self:
        from .._lazy import lightgbm

        lgb = lightgbm()

        path = Path(path)
        meta = json.loads((path / "search.json").read_text())
        eng = cls(path, meta["candidates"], meta["rrf_k"])
        eng.analyzer_ = Analyzer.load(path / "lexical")  # (before `_prepare` of an old bundle)
        if not eng._load_tables():  # an index saved before the tables were kept: build them
            cat = json.loads((path / "catalog.json").read_text())
            arr = np.load(path / "catalog_arrays.npz")
            eng.catalog = SearchCatalog(
                **{f: Strings.of(v) for f, v in cat.items()},  # type: ignore[arg-type]
                price=arr["price"],
                in_stock=arr["in_stock"],
                stock_known=arr.get("stock_known"),  # (None in one saved before it)
            )
            del cat
            eng._prepare()
            eng.has_attribute_index_ = False  # (nor did it keep the products' attributes)
        catalog = eng.catalog
        # each attribute's value codes, made once per load (a filter or a facet reads them)
        eng.attributes_ = AttributeIndex.of(catalog.attribute_json)
        if bool(np.any(eng._cjk)):
            # the catalog's Chinese titles will be queried in Chinese: jieba now (before a server
            # forks), not in the first such request; a catalog without Chinese text never loads it
            load_segmenter()
        pri = np.load(path / "priors.npz")
        eng.lexical_ = LexicalRetriever.load(path / "lexical")
        eng.semantic_ = SemanticRetriever.load(path / "embeddings.npy")
        ml = path / "embeddings_multilingual.npy"
        eng.multilingual_ = SemanticRetriever.load(ml) if ml.exists() else None
        shop = json.loads((path / "shopper.json").read_text())
        eng.synonyms_ = shop["synonyms"]
        eng.speller_ = Speller(Counter(shop["vocabulary"]))
        phrases = [(p, float(s)) for p, s in shop["autocomplete"]]
        if "autocomplete_min_shoppers" not in shop:
            # a bundle of before: any logged query was suggested (a count of searches, not of
            # shoppers): those searched fewer than MIN_QUERY_SHOPPERS times go
            phrases = [
                (p, s) for p, s in phrases if s <= QUERY_SCORE or s >= QUERY_SCORE + MIN_QUERY_SHOPPERS
            ]
        eng.autocomplete_ = (
            Autocomplete(phrases)
            if shop.get("autocomplete_masked_left_out")
            # a bundle saved while the queries governance had masked were still suggested
            else Autocomplete.saved_with_masked(phrases, eng.speller_.vocabulary)
        )
        eng.prior_count_, eng.prior_sum_, eng.popularity_ = pri["count"], pri["sum"], pri["popularity"]
        if (path / "prior_folds.json").exists():  # (an index saved before: served as it was)
            folds = json.loads((path / "prior_folds.json").read_text())
            eng.prior_fold_of_ = {str(k): int(v) for k, v in folds["fold_of"].items()}
            eng.prior_folds_ = [{int(r): (float(n), float(g)) for r, n, g in f} for f in folds["folds"]]
        eng.ctr_ = pri["ctr"] if "ctr" in pri.files else np.full(len(catalog), np.nan, np.float32)
        eng._index = RowIndex(catalog.product_ids, eng._tables["product_order"])
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


def _text_postings(text_terms: list[set[str]]) -> dict[str, Any]:
    """`text_vocabulary` and `text_postings`: each term of the fields BM25 reads (title, brand,
    category, description, attributes) and the ascending catalog rows holding it."""
    vocabulary = Vocabulary.of(t for terms in text_terms for t in terms)
    return {
        "text_vocabulary": vocabulary.terms,
        "text_postings": Postings.of(vocabulary, _postings(text_terms)),
    }
