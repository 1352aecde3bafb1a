"""Retrievers behind one interface: `index(catalog) -> self`, `search(query, k) -> Results`.

`LexicalRetriever` is a tantivy BM25 index on disk over the analyzed fields, with field boosts;
`SemanticRetriever` is a faiss inner-product index over L2-normalized MiniLM embeddings.
Result ids are row positions in the catalog given to `index`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..models import Results
from ._analyze import analyze, analyzed

TEXT_FIELDS = ("title", "brand", "category", "description", "attributes")
DEFAULT_BOOSTS = {"title": 3.0, "brand": 2.0, "category": 1.5, "description": 1.0, "attributes": 1.0}


@dataclass
class SearchCatalog:
    """Products as parallel lists; `attributes` is flattened JSON text."""

    product_ids: list[str]
    title: list[str]
    brand: list[str] = field(default_factory=list)
    category: list[str] = field(default_factory=list)
    description: list[str] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)
    price: np.ndarray | None = None
    in_stock: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.product_ids)
        for f in TEXT_FIELDS:
            col = getattr(self, f)
            if not col:
                setattr(self, f, [""] * n)
        if self.price is None:
            self.price = np.full(n, np.nan)
        if self.in_stock is None:
            self.in_stock = np.ones(n, bool)

    def __len__(self) -> int:
        return len(self.product_ids)

    def text(self, i: int) -> str:
        """Everything searchable about one product, for the text encoder."""
        parts = [self.title[i], self.brand[i], self.category[i].replace(">", " ")]
        return " | ".join(p for p in parts if p)


def _empty(k: int) -> Results:
    return Results(np.empty((1, 0), np.int64), np.empty((1, 0), np.float32))


class LexicalRetriever:
    """BM25 (tantivy) over analyzed fields; `search` ORs the query terms with field boosts."""

    name = "bm25"

    def __init__(self, path: str | Path, boosts: dict[str, float] | None = None):
        self.path = Path(path)
        self.boosts = dict(DEFAULT_BOOSTS if boosts is None else boosts)

    def _schema(self):
        import tantivy

        sb = tantivy.SchemaBuilder()
        sb.add_integer_field("doc", stored=True, indexed=True, fast=True)
        for f in TEXT_FIELDS:
            sb.add_text_field(f, stored=False, tokenizer_name="whitespace")
        return sb.build()

    def index(self, catalog: SearchCatalog) -> LexicalRetriever:
        import tantivy

        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True)
        ix = tantivy.Index(self._schema(), path=str(self.path))
        writer = ix.writer(heap_size=128_000_000, num_threads=1)
        for i in range(len(catalog)):
            doc: dict[str, Any] = {"doc": i}
            for f in TEXT_FIELDS:
                doc[f] = analyzed(getattr(catalog, f)[i])
            writer.add_document(tantivy.Document(**doc))
        writer.commit()
        writer.wait_merging_threads()
        (self.path / "shelfwise.json").write_text(json.dumps({"boosts": self.boosts, "docs": len(catalog)}))
        self._open()
        return self

    def _open(self) -> None:
        import tantivy

        self._ix = tantivy.Index.open(str(self.path))
        self._ix.reload()
        self._searcher = self._ix.searcher()

    @classmethod
    def load(cls, path: str | Path) -> LexicalRetriever:
        meta = json.loads((Path(path) / "shelfwise.json").read_text())
        r = cls(path, meta["boosts"])
        r._open()
        return r

    def search_terms(self, terms: list[str], k: int) -> Results:
        if not terms or k <= 0:
            return _empty(k)
        q = self._ix.parse_query(" ".join(terms), list(TEXT_FIELDS), field_boosts=self.boosts)
        hits = self._searcher.search(q, k).hits
        ids = np.array([self._searcher.doc(a)["doc"][0] for _, a in hits], np.int64)
        scores = np.array([s for s, _ in hits], np.float32)
        return Results(ids[None, :], scores[None, :])

    def search(self, query: str, k: int = 10) -> Results:
        return self.search_terms(analyze(query), k)


class SemanticRetriever:
    """Exact inner product (faiss) up to 200k products, HNSW above; cosine on unit vectors."""

    name = "semantic"

    def __init__(self, hnsw_above: int = 200_000):
        self.hnsw_above = hnsw_above

    def index(self, catalog: SearchCatalog, embeddings: np.ndarray | None = None) -> SemanticRetriever:
        from ..features._text_encoder import encode_texts

        emb = (
            encode_texts([catalog.text(i) for i in range(len(catalog))]) if embeddings is None else embeddings
        )
        self.embeddings_ = np.ascontiguousarray(emb, dtype=np.float32)
        self._build()
        return self

    def _build(self) -> None:
        import faiss

        d = self.embeddings_.shape[1]
        ix: Any
        if len(self.embeddings_) > self.hnsw_above:
            ix = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
            ix.hnsw.efSearch = 128
        else:
            ix = faiss.IndexFlatIP(d)
        ix.add(self.embeddings_)
        self._ix = ix

    def save(self, path: str | Path) -> None:
        np.save(Path(path), self.embeddings_)

    @classmethod
    def load(cls, path: str | Path) -> SemanticRetriever:
        r = cls()
        r.embeddings_ = np.load(Path(path))
        r._build()
        return r

    def search_vectors(self, q: np.ndarray, k: int) -> Results:
        k = min(k, len(self.embeddings_))
        scores, ids = self._ix.search(np.ascontiguousarray(q, np.float32), k)
        return Results(ids.astype(np.int64), scores.astype(np.float32))

    def search(self, query: str, k: int = 10) -> Results:
        from ..features._text_encoder import encode_texts

        return self.search_vectors(encode_texts([query]), k)
