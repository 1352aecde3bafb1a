"""The search engine's per-product tables as flat arrays, memory-mapped from the bundle.

A loaded engine used to rebuild its match tables from `catalog.json` (a Python set of terms per
title, of bigrams, of category terms, of text terms, a dict of postings, the parsed catalog's
lists): about 400 MiB of Python objects per 100,000 products, ~15 s to build, and copy-on-write
after `serve --workers N` forks only until reference counting writes to the pages a worker
touches (+90 MiB per worker over 200 distinct searches). Here every such table is a few numpy
arrays in `search/tables/` (`np.save` when the index is built, `np.load(mmap_mode="r")` when it
is loaded): the pages are the file's, shared through the page cache by every process that maps
them (forked or not, a bundle swapped in later too) and never written.

The engine keeps reading the tables as it did (`engine._title_terms[d]` is a set of terms,
`engine._idf.get(term)`, `engine.catalog.title[d]`, ...): the views below build the small Python
object a lookup returns on demand, from the row's bytes.

    Strings      n strings: UTF-8 bytes end to end, and n + 1 offsets
    TermSets     per row, a frozenset of the row's space-separated terms
    Bigrams      per row, the set of adjacent term pairs of a row's terms
    Coded        per row, one of a few distinct values (a code per row, the values once)
    Vocabulary   sorted distinct terms: a term's id by binary search (no dict of every term)
    TermValues   a term -> value mapping over a Vocabulary (the titles' IDF)
    Postings     a term -> ascending catalog rows (CSR: indptr per term id, rows)
    RowIndex     product id -> catalog row (ids sorted once, binary search)
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

__all__ = [
    "TABLES_DIR",
    "TABLES_VERSION",
    "Bigrams",
    "Coded",
    "Postings",
    "RowIndex",
    "Strings",
    "TermSets",
    "TermValues",
    "Vocabulary",
    "load_array",
    "save_array",
]

TABLES_DIR = "tables"  # under the engine's directory (the bundle's `search/`)
TABLES_VERSION = (
    2  # 2: title_measures; recorded in search.json; a table layout this shelfwise does not know is rebuilt
)


def save_array(folder: Path, name: str, arr: np.ndarray) -> None:
    np.save(folder / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)


def load_array(folder: Path, name: str) -> np.ndarray:
    """The array memory-mapped read-only: its pages are the file's, shared by every process."""
    return np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)


class Strings(Sequence[str]):
    """n strings stored as their UTF-8 bytes end to end (`blob`, uint8) and n + 1 `offsets`
    (int64): string i is blob[offsets[i]:offsets[i + 1]]. Indexing decodes one string."""

    def __init__(self, offsets: np.ndarray, blob: np.ndarray):
        self.offsets = offsets
        self.blob = blob
        # memoryviews: indexing one gives a Python int / a slice without a numpy scalar (~5x faster)
        self._off = np.ascontiguousarray(offsets, np.int64).data.cast("B").cast("q")
        self._bytes = np.ascontiguousarray(blob, np.uint8).data.cast("B")
        self._n = len(offsets) - 1

    @classmethod
    def of(cls, values: Iterable[str]) -> Strings:
        encoded = [v.encode("utf-8") for v in values]
        offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        blob = np.frombuffer(b"".join(encoded) + b"\0", np.uint8)  # a trailing NUL: never a 0-byte buffer
        return cls(offsets, blob)

    def save(self, folder: Path, name: str) -> None:
        save_array(folder, f"{name}.offsets", self.offsets)
        save_array(folder, f"{name}.bytes", self.blob)

    @classmethod
    def load(cls, folder: Path, name: str) -> Strings:
        return cls(load_array(folder, f"{name}.offsets"), load_array(folder, f"{name}.bytes"))

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> list[str]: ...
    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(f"row {i} out of range ({self._n} strings)")
        return str(self._bytes[self._off[i] : self._off[i + 1]], "utf-8")

    def __iter__(self) -> Iterator[str]:
        off, data = self._off, self._bytes
        for i in range(self._n):
            yield str(data[off[i] : off[i + 1]], "utf-8")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Strings({self._n} strings, {len(self.blob)} bytes)"


class _LastRow:
    """A one-row cache: the feature code asks for the same row's set several times in a row
    (title terms: 4 lookups per candidate). A (row, value) tuple is replaced whole, so threads
    that share the view see one row's pair or another's, never a mix."""

    _last: tuple[int, Any] = (-1, None)

    def _cached(self, i: int) -> Any:
        last = self._last
        if last[0] == i:
            return last[1]
        value = self._make(i)
        self._last = (i, value)
        return value

    def _make(self, i: int) -> Any:
        raise NotImplementedError


class TermSets(_LastRow, Sequence[frozenset[str]]):
    """Per row, the frozenset of the row's terms (analyzed terms never hold a space: see
    `_analyze.analyze`), from a `Strings` of the terms joined by spaces."""

    def __init__(self, joined: Sequence[str]):
        self.joined = joined

    def __len__(self) -> int:
        return len(self.joined)

    def _make(self, i: int) -> frozenset[str]:
        return frozenset(self.joined[i].split())

    def __getitem__(self, i: int) -> frozenset[str]:  # type: ignore[override]
        return self._cached(int(i))


class Bigrams(_LastRow, Sequence[set[tuple[str, str]]]):
    """Per row, the set of adjacent pairs of the row's terms (in order, joined by spaces)."""

    def __init__(self, joined: Sequence[str]):
        self.joined = joined

    def __len__(self) -> int:
        return len(self.joined)

    def _make(self, i: int) -> set[tuple[str, str]]:
        terms = self.joined[i].split()
        return set(zip(terms, terms[1:], strict=False))

    def __getitem__(self, i: int) -> set[tuple[str, str]]:  # type: ignore[override]
        return self._cached(int(i))


class Coded(Sequence[Any]):
    """Per row, one of a few distinct values: an int32 code per row and each value once (the
    catalog's category paths, brands; category term sets). `decode` turns a stored value into
    what a lookup returns (computed once per distinct value, on first use)."""

    def __init__(self, codes: np.ndarray, values: Sequence[str], decode: Any = None):
        self.codes = codes
        self.values = values
        self._decode = decode
        self._decoded: dict[int, Any] = {}
        self._list = np.ascontiguousarray(codes, np.int32).data.cast("B").cast("i")

    @classmethod
    def of(cls, values: Iterable[str], decode: Any = None) -> Coded:
        distinct: dict[str, int] = {}
        codes = np.array([distinct.setdefault(v, len(distinct)) for v in values], np.int32)
        return cls(codes, Strings.of(distinct), decode)

    def save(self, folder: Path, name: str) -> None:
        save_array(folder, f"{name}.codes", self.codes)
        Strings.of(self.values).save(folder, f"{name}.values")

    @classmethod
    def load(cls, folder: Path, name: str, decode: Any = None) -> Coded:
        return cls(load_array(folder, f"{name}.codes"), Strings.load(folder, f"{name}.values"), decode)

    def __len__(self) -> int:
        return len(self._list)

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        code = self._list[int(i)]
        got = self._decoded.get(code)
        if got is None:
            value = self.values[code]
            got = self._decoded[code] = value if self._decode is None else self._decode(value)
        return got

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self)):
            yield self[i]


class Vocabulary:
    """Distinct terms, sorted (Python's string order), as `Strings`: a term's id is its
    position, found by binary search (~17 string comparisons on 100,000 terms)."""

    def __init__(self, terms: Strings):
        self.terms = terms

    @classmethod
    def of(cls, terms: Iterable[str]) -> Vocabulary:
        return cls(Strings.of(sorted(set(terms))))

    def id(self, term: str) -> int | None:
        i = bisect.bisect_left(self.terms, term)
        return i if i < len(self.terms) and self.terms[i] == term else None

    def __len__(self) -> int:
        return len(self.terms)


class TermValues(Mapping[str, float]):
    """term -> float over a `Vocabulary` (one float per term id)."""

    def __init__(self, vocabulary: Vocabulary, weights: np.ndarray):
        self.vocabulary = vocabulary
        self.weights = weights

    def __getitem__(self, term: str) -> float:
        i = self.vocabulary.id(term)
        if i is None:
            raise KeyError(term)
        return float(self.weights[i])

    def __iter__(self) -> Iterator[str]:
        return iter(self.vocabulary.terms)

    def __len__(self) -> int:
        return len(self.vocabulary)


class Postings(Mapping[str, np.ndarray]):
    """term -> the ascending catalog rows whose title has it: CSR over a `Vocabulary`
    (`indptr[id]:indptr[id + 1]` of `rows`)."""

    def __init__(self, vocabulary: Vocabulary, indptr: np.ndarray, rows: np.ndarray):
        self.vocabulary = vocabulary
        self.indptr = indptr
        self.rows = rows

    @classmethod
    def of(cls, vocabulary: Vocabulary, postings: Mapping[str, np.ndarray]) -> Postings:
        terms = list(vocabulary.terms)
        sizes = [len(postings.get(t, ())) for t in terms]
        indptr = np.zeros(len(terms) + 1, np.int64)
        np.cumsum(sizes, out=indptr[1:])
        parts = [np.asarray(postings[t], np.int32) for t in terms if t in postings]
        rows = np.concatenate(parts) if parts else np.zeros(0, np.int32)
        return cls(vocabulary, indptr, rows)

    def __getitem__(self, term: str) -> np.ndarray:
        i = self.vocabulary.id(term)
        if i is None:
            raise KeyError(term)
        # a plain ndarray over the mapped pages (a memmap subclass costs per numpy call)
        return np.asarray(self.rows[int(self.indptr[i]) : int(self.indptr[i + 1])])

    def __iter__(self) -> Iterator[str]:
        return iter(self.vocabulary.terms)

    def __len__(self) -> int:
        return len(self.vocabulary)


class RowIndex(Mapping[str, int]):
    """product id -> catalog row: the ids' rows in id order (`order`), searched by bisection."""

    def __init__(self, ids: Sequence[str], order: np.ndarray):
        self.ids = ids
        self.order = order
        self._sorted = _Permuted(ids, order)

    @classmethod
    def of(cls, ids: Sequence[str]) -> RowIndex:
        order = np.array(sorted(range(len(ids)), key=ids.__getitem__), np.int32)
        return cls(ids, order)

    def __getitem__(self, product_id: str) -> int:
        if not isinstance(product_id, str):
            raise KeyError(product_id)
        j = bisect.bisect_left(self._sorted, product_id)
        if j < len(self._sorted) and self._sorted[j] == product_id:
            return int(self.order[j])
        raise KeyError(product_id)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


class _Permuted(Sequence[str]):
    def __init__(self, values: Sequence[str], order: np.ndarray):
        self.values, self.order = values, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, j: int) -> str:  # type: ignore[override]
        return self.values[int(self.order[j])]
