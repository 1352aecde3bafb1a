"""The search engine's per-product tables as flat arrays, memory-mapped from the bundle.

A loaded engine used to rebuild its match tables from `catalog.json` (a Python set of terms per
title, of bigrams, of category terms, of text terms, a dict of postings, the parsed catalog's
lists): about 400 MiB of Python objects per 100,000 products, ~15 s to build, and copy-on-write
after `serve --workers N` forks only until reference counting writes to the pages a worker
touches (+90 MiB per worker over 200 distinct searches). Here every such table is a few numpy
arrays in `search/tables/` (`np.save` when the index is built, `np.load(mmap_mode="r")` when it
is loaded): the pages are the file's, shared through the page cache by every process that maps
them (forked or not, a bundle swapped in later too) and never written.

The engine reads the tables through the views below: a lookup (`engine._idf.get(term)`,
`engine.catalog.title[d]`, ...) builds the small Python object it returns from the row's bytes,
and the ranking features read a query's candidates all at once (`Strings.gather`: their rows'
bytes in one buffer, matched by a few numpy scans per query term, not one set per row).

    Strings      n strings: UTF-8 bytes end to end, and n + 1 offsets
    Gathered     some rows of a Strings in one buffer: which rows hold a token or a substring
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
    "Coded",
    "Gathered",
    "Postings",
    "RowIndex",
    "Strings",
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
        # plain ndarrays over the same (mapped) pages for fancy indexing: a memmap subclass
        # costs per numpy call
        self._offsets = np.asarray(offsets, np.int64)
        self._blob = np.asarray(blob, np.uint8)
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

    def __reduce__(self) -> tuple[Any, ...]:
        # the arrays travel (a copy of the mapped pages), not the memoryviews over them, which
        # do not pickle: Spark broadcasts a bundle's catalog to its executors (`_spark_jobs`)
        return (Strings, (np.asarray(self.offsets), np.asarray(self.blob)))

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

    def gather(self, rows: np.ndarray, delims: str = " ") -> Gathered:
        """The given rows' bytes in one buffer (see `Gathered`; `delims` end a token)."""
        return Gathered(self, rows, delims)

    def take(self, rows: np.ndarray) -> list[str]:
        """The given rows' strings: one copy and one decode for all of them."""
        return Gathered(self, rows).texts()

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


class Gathered:
    """Some rows of a `Strings` (a query's candidates) in one buffer, to match them all at once:
    each row's bytes after a NUL byte, one more NUL at the end, copied out of the (mapped) blob
    by one numpy fancy index (only the pages of those rows are read). Which rows hold a token
    (an occurrence bounded by `delims` or a NUL on both sides) or a substring is then a few
    vectorised comparisons per query term instead of a Python set per row and lookup. The
    stored strings never hold a NUL (analyzed terms, rapidfuzz-processed titles and encoded
    measures are word characters, spaces and `.:|`), and neither do the needles, so no
    occurrence runs from one row into the next."""

    def __init__(self, strings: Strings, rows: np.ndarray, delims: str = " "):
        rows = np.asarray(rows, np.int64)
        off = strings._offsets
        lo = off[rows]
        lens = off[rows + 1] - lo
        self.n = n = len(rows)
        # row j's NUL at starts[j], its bytes right after; starts[n] is the closing NUL
        self.starts = np.zeros(n + 1, np.int64)
        np.cumsum(lens + 1, out=self.starts[1:])
        buf = np.zeros(int(self.starts[-1]) + 1, np.uint8)
        total = len(buf) - n - 1
        if total:
            # byte k of the rows end to end is byte k - (its row's first k) of its row, at
            # lo[row] + that in the blob; it fills the buffer's k-th non-NUL position
            first = self.starts[:-1] - np.arange(n, dtype=np.int64)
            fill = np.ones(len(buf), bool)
            fill[self.starts] = False
            buf[fill] = strings._blob[np.arange(total, dtype=np.int64) + np.repeat(lo - first, lens)]
        self.buf = buf
        self._delim = np.zeros(256, bool)
        self._delim[0] = True
        self._delim[list(delims.encode())] = True
        self._token_starts: np.ndarray | None = None
        self._parts: dict[int, np.ndarray] = {}

    def texts(self) -> list[str]:
        """The rows as strings (one decode of the buffer, split at the NULs)."""
        if not self.n:
            return []
        return str(self.buf[1:-1].tobytes(), "utf-8").split("\0")

    def _find(self, needle: bytes, at: np.ndarray | None = None) -> np.ndarray:
        """Ascending buffer positions where `needle` starts (among `at` when given): the first
        byte's positions, narrowed one byte at a time (each step compares only the survivors)."""
        buf, size = self.buf, len(needle)
        if size > len(buf):
            return np.zeros(0, np.int64)
        if at is None:
            at = np.flatnonzero(buf[: len(buf) - size + 1] == needle[0])
        else:
            at = at[(at + size <= len(buf)) & (buf[at] == needle[0])]
        for k in range(1, size):
            if not len(at):
                break
            at = at[buf[at + k] == needle[k]]
        return at

    def _tokens(self, token: str) -> np.ndarray:
        """Positions of `token`'s occurrences bounded by a delimiter (or NUL) on both sides."""
        if self._token_starts is None:  # every position right after a delimiter: where tokens start
            self._token_starts = np.flatnonzero(self._delim[self.buf[:-1]]) + 1
        needle = token.encode("utf-8")
        if not needle:
            return np.zeros(0, np.int64)
        at = self._find(needle, self._token_starts)
        return at[self._delim[self.buf[at + len(needle)]]]

    def _rows(self, at: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.starts, at, side="right") - 1

    def holding(self, token: str, part: int | None = None, sep: str = "|") -> np.ndarray:
        """Per row, whether it holds `token` (in its `part`-th `sep`-separated part when given;
        `sep` must then be one of the delimiters)."""
        at = self._tokens(token)
        rows = self._rows(at)
        if part is not None:
            code = ord(sep)
            if code not in self._parts:
                self._parts[code] = np.cumsum(self.buf == code)
            bars = self._parts[code]
            keep = bars[at] - bars[self.starts[rows]] == part
            rows = rows[keep]
        out = np.zeros(self.n, bool)
        out[rows] = True
        return out

    def count(self, tokens: Iterable[str], part: int | None = None) -> np.ndarray:
        """Per row, how many of the (distinct) `tokens` it holds."""
        out = np.zeros(self.n, np.int64)
        for t in tokens:
            out += self.holding(t, part)
        return out

    def containing(self, sub: str) -> np.ndarray:
        """Per row, whether `sub` (non-empty, without NUL) occurs in it anywhere (as `in`)."""
        out = np.zeros(self.n, bool)
        out[self._rows(self._find(sub.encode("utf-8")))] = True
        return out


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

    def __reduce__(self) -> tuple[Any, ...]:
        # as `Strings.__reduce__`: the codes and the values travel, not the memoryview
        return (Coded, (np.asarray(self.codes), self.values, self._decode))

    def save(self, folder: Path, name: str) -> None:
        save_array(folder, f"{name}.codes", self.codes)
        Strings.of(self.values).save(folder, f"{name}.values")

    @classmethod
    def load(cls, folder: Path, name: str, decode: Any = None) -> Coded:
        return cls(load_array(folder, f"{name}.codes"), Strings.load(folder, f"{name}.values"), decode)

    def __len__(self) -> int:
        return len(self._list)

    def __getitem__(self, i: int) -> Any:  # type: ignore[override]
        return self._value(self._list[int(i)])

    def _value(self, code: int) -> Any:
        got = self._decoded.get(code)
        if got is None:
            value = self.values[code]
            got = self._decoded[code] = value if self._decode is None else self._decode(value)
        return got

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self)):
            yield self[i]

    def map(self, rows: np.ndarray, fn: Any) -> np.ndarray:
        """fn(value) per given row (float64), computed once per distinct value among them."""
        codes, inverse = np.unique(np.asarray(self.codes)[rows], return_inverse=True)
        got = np.array([fn(self._value(int(c))) for c in codes], np.float64)
        return got[inverse.reshape(-1)] if len(codes) else np.zeros(0, np.float64)


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
