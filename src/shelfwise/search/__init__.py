"""Product search: analysis, lexical (tantivy) and semantic (MiniLM, multilingual USE + faiss)
retrieval, hybrid fusion, MiniLM fine-tuned on the shop's judgments, and a LightGBM re-ranker."""

from ._analyze import analyze, words
from ._build import load_query_log, load_search_data
from ._cross import CrossSettings
from ._engine import FEATURES, LEVELS, SearchEngine, ndcg_at_k
from ._finetune import FinetuneSettings
from ._retrievers import LexicalRetriever, SearchCatalog, SemanticRetriever
from ._shopper import SORTS, Autocomplete, Filters, Speller, load_synonyms, parse_synonyms

__all__ = [
    "SORTS",
    "Autocomplete",
    "Filters",
    "Speller",
    "load_synonyms",
    "parse_synonyms",
    "load_query_log",
    "FEATURES",
    "LEVELS",
    "CrossSettings",
    "FinetuneSettings",
    "LexicalRetriever",
    "SearchCatalog",
    "SearchEngine",
    "SemanticRetriever",
    "analyze",
    "load_search_data",
    "ndcg_at_k",
    "words",
]
