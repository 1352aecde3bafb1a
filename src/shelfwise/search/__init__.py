"""Product search: analysis, lexical (tantivy) and semantic (MiniLM + faiss) retrieval, hybrid
fusion and a LightGBM re-ranker."""

from ._analyze import analyze, words
from ._build import load_search_data
from ._engine import FEATURES, SearchEngine, ndcg_at_k
from ._retrievers import LexicalRetriever, SearchCatalog, SemanticRetriever

__all__ = [
    "FEATURES",
    "LexicalRetriever",
    "SearchCatalog",
    "SearchEngine",
    "SemanticRetriever",
    "analyze",
    "load_search_data",
    "ndcg_at_k",
    "words",
]
