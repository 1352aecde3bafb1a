"""Retrievers behind one interface: `index(catalog) -> self`, `search(query, k) -> Results`.

`LexicalRetriever` is a tantivy BM25 index on disk over the analyzed fields, with field boosts;
`SemanticRetriever` is a faiss inner-product index over L2-normalized text embeddings (MiniLM,
the multilingual USE, or a fine-tuned MiniLM).
Result ids are row positions in the catalog given to `index`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..models import Results
from ._analyze import ENGLISH, Analyzer, without_cjk

TEXT_FIELDS = ("title", "brand", "category", "description", "attributes")
# weight of the category path's embedding beside the product name's (see `embed_catalog`)
CATEGORY_WEIGHT = 0.2
# the HNSW graph above `SemanticRetriever.hnsw_above` products (see its docstring for the recall)
HNSW_M = 24
HNSW_EF_CONSTRUCTION = 48
HNSW_EF_SEARCH = 128
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
    # whether each product's stock is known (a catalog without a stock column, or a product
    # whose `in_stock` is empty, is neither in nor out of stock to a filter or a facet);
    # default: known when `in_stock` is given
    stock_known: np.ndarray | None = None
    # each product's attributes as the JSON object it was curated with ("" = none): what the
    # attribute filters and facets read (`_attributes.AttributeIndex`; `attributes` above is
    # their flattened text, for the keyword index)
    attribute_json: Sequence[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.product_ids)
        if not len(self.attribute_json):
            self.attribute_json = [""] * n
        if self.stock_known is None:
            self.stock_known = np.full(n, self.in_stock is not None)
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

    def name(self, i: int) -> str:
        """What the product is called: the title, and the brand when the title does not already
        name it (repeating it costs encoder time and says nothing new)."""
        title, brand = self.title[i], self.brand[i]
        if brand and brand.casefold() not in title.casefold():
            return f"{title} | {brand}"
        return title

    def text(self, i: int) -> str:
        """Everything searchable about one product in a line: name and category path (what the
        cross-encoder reads and the fine-tuned encoder learns from)."""
        parts = [self.name(i), self.category_path(i)]
        return " | ".join(p for p in parts if p)

    def category_path(self, i: int) -> str:
        """The category as words: `Shoes > Running` -> `Shoes Running`."""
        return " ".join(self.category[i].replace(">", " ").split())


def _empty(k: int) -> Results:
    return Results(np.empty((1, 0), np.int64), np.empty((1, 0), np.float32))


class LexicalRetriever:
    """BM25 (tantivy) over analyzed fields; `search` ORs the query terms with field boosts."""

    name = "bm25"

    def __init__(
        self, path: str | Path, boosts: dict[str, float] | None = None, analyzer: Analyzer | None = None
    ):
        self.path = Path(path)
        self.boosts = dict(DEFAULT_BOOSTS if boosts is None else boosts)
        # the shop's text analysis (language, stopwords, compounds), saved with the index
        self.analyzer = analyzer or ENGLISH

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
                doc[f] = self.analyzer.analyzed(getattr(catalog, f)[i])
            writer.add_document(tantivy.Document(**doc))
        writer.commit()
        writer.wait_merging_threads()
        (self.path / "shelfwise.json").write_text(json.dumps({"boosts": self.boosts, "docs": len(catalog)}))
        if self.analyzer.language != "english":  # (an index without the file is English's)
            self.analyzer.save(self.path)
        self._open()
        return self

    def _open(self) -> None:
        import tantivy

        self._ix = tantivy.Index.open(str(self.path))
        self._ix.reload()
        self._searcher = self._ix.searcher()
        # catalog row of every (segment, doc) address, read once: loading a stored document per
        # hit cost ~0.7 ms per query (300 hits) on a 100k catalog; the index is not written after
        self._rows: dict[int, dict[int, int]] = {}
        n = self._searcher.num_docs
        for _, a in self._searcher.search(tantivy.Query.all_query(), max(n, 1)).hits:
            self._rows.setdefault(a.segment_ord, {})[a.doc] = self._searcher.doc(a)["doc"][0]

    def row(self, address: Any) -> int:
        """The catalog row a search hit's address points at."""
        return self._rows[address.segment_ord][address.doc]

    @classmethod
    def load(cls, path: str | Path) -> LexicalRetriever:
        meta = json.loads((Path(path) / "shelfwise.json").read_text())
        r = cls(path, meta["boosts"], Analyzer.load(path))
        r._open()
        return r

    def search_terms(self, terms: list[str], k: int) -> Results:
        if not terms or k <= 0:
            return _empty(k)
        q = self._ix.parse_query(" ".join(terms), list(TEXT_FIELDS), field_boosts=self.boosts)
        hits = self._searcher.search(q, k).hits
        ids = np.array([self.row(a) for _, a in hits], np.int64)
        scores = np.array([s for s, _ in hits], np.float32)
        return Results(ids[None, :], scores[None, :])

    def search(self, query: str, k: int = 10) -> Results:
        return self.search_terms(self.analyzer.analyze(query), k)


class SemanticRetriever:
    """Nearest products by cosine (unit vectors, faiss inner product) under one text encoder:
    exact search up to `hnsw_above` products, HNSW (M=24, efConstruction 48, efSearch 128) above:
    recall@100 0.978 (MiniLM) / 0.986 (multilingual) against exact search on 100k demo products,
    built in 4.2 / 6.5 s on 2 cores (M=32, efConstruction 64: 0.982 / 0.985 in 5.9 / 8.6 s).

    `encoder` names the encoder: "minilm" (the shipped English MiniLM), "minilm-int8pc" (the same,
    quantized per channel: for large catalogs, see `SearchEngine.build`; "minilm-int8", one scale
    per matrix, in bundles built before), "multilingual" (the
    multilingual USE, for Chinese and cross-language queries), or the file name of a fine-tuned
    ONNX encoder inside the search directory (`base` when loading)."""

    name = "semantic"

    def __init__(self, encoder: str = "minilm", hnsw_above: int = 50_000, base: str | Path | None = None):
        self.encoder = encoder
        self._encoder: Any = None
        self.hnsw_above = hnsw_above
        self.base = Path(base) if base is not None else None

    def encode(self, texts: list[str]) -> np.ndarray:
        if self._encoder is None:  # resolved once: no lookup (or file stat) per query
            self._encoder = text_encoder(self.encoder, self.base)
        return self._encoder.encode(texts)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Query vectors, each independent of the other texts of the list (a server batches the
        queries of concurrent requests; an int8 encoder would otherwise mix them)."""
        if self._encoder is None:
            self._encoder = text_encoder(self.encoder, self.base)
        enc = self._encoder
        return enc.encode_queries(texts) if hasattr(enc, "encode_queries") else enc.encode(texts)

    def index(self, catalog: SearchCatalog, embeddings: np.ndarray | None = None) -> SemanticRetriever:
        if embeddings is None:
            embeddings = self.embed_catalog(catalog)
        self.embeddings_ = np.ascontiguousarray(embeddings, dtype=np.float32)
        self._build()
        return self

    def embed_catalog(self, catalog: SearchCatalog) -> np.ndarray:
        """One unit vector per product: the embedding of its name plus `CATEGORY_WEIGHT` times
        the embedding of its category path, normalized. The category path is embedded once per
        distinct path (hundreds in a catalog), not once per product inside each product's text:
        30% fewer tokens to encode per product (17 -> 12 MiniLM tokens on 100k demo products
        with every title distinct). Semantic-only NDCG@10 on the demo judgments (int8 MiniLM),
        whole-text embedding vs composed: 0.108 vs 0.122 on 20k products, 0.0230 vs 0.0221 on
        100k (title alone: 0.117 / 0.0248) - no measurable loss; the weight keeps the category's
        sense in the vector for catalogs whose titles do not say what the product is.
        Products that read the same (variants of one title) are encoded once; an English encoder
        gets what it can read of a Chinese name (its Chinese is the multilingual index's job, and
        tokenized into characters it only costs encoding time)."""
        readable = (lambda t: t) if self.encoder == "multilingual" else without_cjk
        names = self._encode_distinct([readable(catalog.name(i)) for i in range(len(catalog))])
        paths = [catalog.category_path(i) for i in range(len(catalog))]
        filed = np.flatnonzero([bool(p) for p in paths])
        if len(filed):
            names[filed] += CATEGORY_WEIGHT * self._encode_distinct([paths[i] for i in filed])
            names /= np.maximum(np.linalg.norm(names, axis=1, keepdims=True), 1e-12)
        return names

    def _encode_distinct(self, texts: list[str]) -> np.ndarray:
        """Embeddings of `texts`, each distinct text encoded once."""
        first: dict[str, int] = {}
        which = [first.setdefault(t, len(first)) for t in texts]
        return self.encode(list(first))[np.asarray(which, np.int64)]

    def _build(self) -> None:
        import faiss

        d = self.embeddings_.shape[1]
        ix: Any
        if len(self.embeddings_) > self.hnsw_above:
            ix = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
            ix.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            ix.add(self.embeddings_)
            ix.hnsw.efSearch = HNSW_EF_SEARCH
        else:
            ix = faiss.IndexFlatIP(d)
            ix.add(self.embeddings_)
        self._ix = ix

    def save(self, path: str | Path) -> None:
        """The embeddings (`path`, .npy) and the faiss index (`.faiss` beside it: a 100k-product
        HNSW graph is read in well under a second instead of rebuilt). Both are loaded
        memory-mapped (see `load`); each file is written beside and renamed over the old one, so
        a server mapping the old file keeps reading it."""
        import faiss

        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(self.embeddings_), allow_pickle=False)
        tmp.replace(path)
        graph = path.with_suffix(".faiss")
        tmp = graph.with_name(f".{graph.name}.tmp")
        faiss.write_index(self._ix, str(tmp))
        tmp.replace(graph)
        path.with_suffix(".json").write_text(
            json.dumps({"encoder": self.encoder, "hnsw_above": self.hnsw_above})
        )

    @classmethod
    def load(cls, path: str | Path) -> SemanticRetriever:
        """The saved retriever, its embeddings and faiss index memory-mapped from the files (read
        only: the worker processes of a server share one copy in the page cache)."""
        import faiss

        path = Path(path)
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        r = cls(meta.get("encoder", "minilm"), meta.get("hnsw_above", 50_000), base=path.parent)
        r.embeddings_ = np.load(path, mmap_mode="r")
        graph = path.with_suffix(".faiss")
        if graph.exists():
            ix: Any = faiss.read_index(str(graph), faiss.IO_FLAG_MMAP_IFC)
            hnsw = isinstance(ix, faiss.IndexHNSWFlat)
            if (
                ix.ntotal == len(r.embeddings_)
                and ix.d == r.embeddings_.shape[1]
                and hnsw == (len(r.embeddings_) > r.hnsw_above)
            ):
                if hnsw:
                    ix.hnsw.efSearch = HNSW_EF_SEARCH
                r._ix = ix
                return r
        r._build()  # a bundle saved before the flat index was kept too
        return r

    def search_vectors(self, q: np.ndarray, k: int) -> Results:
        k = min(k, len(self.embeddings_))
        scores, ids = self._ix.search(np.ascontiguousarray(q, np.float32), k)
        return Results(ids.astype(np.int64), scores.astype(np.float32))

    def search(self, query: str, k: int = 10) -> Results:
        return self.search_vectors(self.encode([query]), k)


def text_encoder(name: str, base: Path | None = None) -> Any:
    """The encoder a semantic index was built with (see `SemanticRetriever`)."""
    from ..features import _text_encoder as te

    if name in ("minilm", "minilm-int8", "minilm-int8pc"):
        # a bundle's queries are encoded by the graph its catalog was embedded with
        return te.shipped_encoder(int8=name != "minilm", per_channel=name != "minilm-int8")
    if name == "multilingual":
        return te.multilingual_encoder()
    if base is None:
        raise ValueError(f"encoder {name!r} is a file and needs the search directory")
    path = base / name
    return _tuned(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _tuned(path: str, mtime_ns: int) -> Any:
    from ..features._text_encoder import OnnxEncoder

    return OnnxEncoder(path)
