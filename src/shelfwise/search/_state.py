"""What the parts of the search engine share: the engine's state (set by `__init__`, `build` or
`load`) and the query types. The engine is assembled from one class per concern, each a module:

    _index.SearchIndex        building, saving and loading the lexical + vector indexes
    _features.RankingFeatures  candidates and their ranking features
    _training.RankerTraining   the LightGBM ranker, the MiniLM fine-tune, the cross-encoder
    _engine.SearchEngine       the query-time searcher (levels, filters, facets, caches)
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from cachetools import LRUCache

from ._analyze import ENGLISH, Analyzer
from ._attributes import AttributeIndex

if TYPE_CHECKING:
    from ._compact import Coded, Strings
    from ._cross import OnnxCrossEncoder
    from ._personal import ProfileColumns
    from ._retrievers import LexicalRetriever, SearchCatalog, SemanticRetriever
    from ._shopper import Autocomplete, Speller
    from ._units import MeasureRows

QUERY_CACHE_SIZE = 20_000  # corrected queries and query vectors kept per engine (LRU)
# each retriever's top list (BM25, the main encoder, the multilingual one): the candidates the
# ranker re-ranks are their union. A setting of the search pipeline (`TrainSettings.
# search_candidates`, `train --search-candidates`), saved in the bundle's search.json. Deeper
# was measured and not taken: on the Home Depot harness (benchmarks/search_harness.py, MiniLM
# untuned), depth 200 holds more of the judged gain (validation 0.849 -> 0.895, 159 -> 312
# candidates a query) but the ranker does no better (validation NDCG@10 0.5338 -> 0.5336,
# paired difference -0.0001 +- 0.0019; test 0.5341 -> 0.5329, -0.0012 +- 0.0014), at ~3 ms
# more CPU a query on 100k products (the features: 4.9 -> 7.6 ms)
CANDIDATES = 100


@dataclass
class Query:
    text: str  # as searched (after spelling correction)
    terms: list[str]  # analyzed, synonyms added
    corrected: str | None = None  # set when the spelling was corrected


def query_key(text: str) -> str:
    """A query compared as text: lower case, its words separated by one space."""
    return " ".join(text.lower().split())


@dataclass
class QueryVectors:
    main: np.ndarray
    multilingual: np.ndarray | None = None


class EngineState:
    """The attributes every part of the engine reads, and the query-time methods the training
    part calls (defined by `SearchEngine`)."""

    # set by `build` or `load`
    catalog: SearchCatalog
    synonyms_: dict[str, list[str]]
    speller_: Speller
    autocomplete_: Autocomplete
    lexical_: LexicalRetriever
    semantic_: SemanticRetriever
    multilingual_: SemanticRetriever | None
    popularity_: np.ndarray
    ctr_: np.ndarray
    prior_count_: np.ndarray
    prior_sum_: np.ndarray
    build_seconds_: dict[str, float]
    _index: Mapping[str, int]  # product id -> catalog row (a `_compact.RowIndex` when loaded)
    # per-product match tables (see `SearchIndex._prepare`): views over the flat arrays of
    # `_compact`, memory-mapped from the bundle when loaded; the ranking features read a query's
    # candidates' rows from them all at once (`Strings.gather`)
    _tables: dict[str, Any]
    _title_norm: Strings  # the analyzed title terms, in order, joined by spaces
    _title_sizes: np.ndarray  # per row, how many distinct terms its title has
    _title_proc: Strings
    _title_measures: MeasureRows
    _idf: Mapping[str, float]
    _idf_unseen: float
    _title_rows: dict[str, np.ndarray]  # a `_compact.Postings` (a Mapping of the same values)
    _cjk: np.ndarray
    _category_terms: Coded  # decoded: the category's analyzed terms (a frozenset)
    _profile_cols: ProfileColumns
    _text_terms: Strings  # the title's, brand's, category's, description's and attributes' terms

    def __init__(
        self, path: str | Path, candidates: int = CANDIDATES, rrf_k: int = 60, max_depth: int = 10_000
    ):
        if int(candidates) < 1:
            raise ValueError(f"search candidates must be at least 1 per retriever, got {candidates}")
        self.path = Path(path)
        self.candidates = candidates
        self.max_depth = max_depth
        self.rrf_k = rrf_k
        # the keyword analysis (language, stopwords, compounds): `build` picks it, `load` reads it
        self.analyzer_: Analyzer = ENGLISH
        self.ranker_: Any = None
        self.ranker_columns_: list[int] | None = None  # set when a loaded ranker knew other features
        self.cross_: OnnxCrossEncoder | None = None  # the kept cross-encoder, if any
        self.cross_top_ = 0  # how many of the first results it re-orders
        self.cross_weight_ = 1.0  # its weight in the blend with the pipeline's scores
        self.personalized_ = False  # the ranker splits on the shopper's profile features
        # the queries (`_training._query_key`) the kept fine-tuned encoder learned from, whose
        # cosines `fit_ranker` leaves out (set by `finetune_encoder`, not saved)
        self.tuned_on_: frozenset[str] = frozenset()
        # the product prior as each judged training query's rows met it in `fit_ranker` (out of
        # its fold): query key -> fold, and per fold row -> (judgments, summed gain) taken off.
        # Served, such a query's prior is taken off alike (served with its own judgments in it,
        # its judged products read as other queries' and fell: NDCG@10 0.557 against 0.720
        # without the ranker on a walk's 161 training queries); saved with the index
        self.prior_fold_of_: dict[str, int] = {}
        self.prior_folds_: list[dict[int, tuple[float, float]]] = []
        # query-time caches (bounded LRU, shared by the threads that query): the spelling fix of
        # a query's words and a query's vectors; long-tail queries repeat their words, and a page
        # evicted from the server's page cache is re-ranked without encoding the query again
        self._caches_lock = threading.Lock()
        self._spelling: LRUCache[str, str] = LRUCache(QUERY_CACHE_SIZE)
        self._vectors: LRUCache[str, QueryVectors] = LRUCache(QUERY_CACHE_SIZE)
        self._null_vectors: dict[str, np.ndarray] = {}  # see `no_match_threshold`
        self._facet_codes: tuple[Any, ...] | None = None  # see `_facets`
        # the catalog's attribute value codes (filters and facets): set by `build` and `load`
        self.attributes_ = AttributeIndex({}, 0)
        # False for an index saved before attribute filters existed: it kept no product's
        # attributes, so a filter on one matches nothing (`filter_warnings` says so)
        self.has_attribute_index_ = True

    # -- query time (see `SearchEngine`) ----------------------------------------------------
    def _query(self, text: str) -> Query:
        raise NotImplementedError

    def encode_queries(self, texts: list[str], multilingual: bool | None = True) -> list[QueryVectors]:
        raise NotImplementedError

    def search(
        self, text: str, k: int = 10, candidates: list[str] | None = None, vecs: QueryVectors | None = None
    ) -> list[tuple[str, float]]:
        raise NotImplementedError
