"""Product attributes (`{"color": "red", "size": "M"}`) as search filters and facets.

`AttributeIndex` codes each attribute key's values once per loaded engine (per key, one int32
code per catalog row, -1 where the product does not say it): a filter is one look-up table
indexed by the rows' codes, a facet one `bincount`, whatever the number of matching products.
Keys and values compare trimmed and case-folded (`Color: Red` is `color=red`), a key's other
spellings as ingest folds them (`colour`, `Farbe` are `color`: `key_of`); a facet shows a key
and a value as the catalog first spells them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..governance._mapping import attribute_key as canonical_key

__all__ = [
    "ATTRIBUTE_KEYS",
    "ATTRIBUTE_VALUES",
    "AttributeIndex",
    "attribute_key",
    "key_of",
    "parse_attributes",
]

# the facets of at most this many attribute keys (the catalog's most common ones, and any a
# search filters on), each with at most this many values (the most frequent in the results,
# and any the search filters on): a catalog with a free-text attribute (a SKU note, a care
# label) must not send thousands of facet values with every page
ATTRIBUTE_KEYS = 8
ATTRIBUTE_VALUES = 20


def attribute_key(text: object) -> str:
    """An attribute key or value as filters compare it: trimmed, inner spaces collapsed,
    case-folded (`" Light  Blue"` is `light blue`)."""
    return " ".join(str(text).split()).casefold()


def key_of(text: object) -> str:
    """An attribute key as filters compare it: its canonical key as ingest folds it
    (`_mapping.attribute_key`: `Colour`, `Farbe`, `couleur` are `color`; `Age Group` is
    `age_group`), then `attribute_key`'s. A filter on `colour` finds the `color` a catalog
    curated since the fold holds, and one on `color` the `colour` a catalog curated before it
    holds."""
    return attribute_key(canonical_key(" ".join(str(text).split())))


def parse_attributes(text: str | None) -> dict[str, str]:
    """A product's attributes (a JSON object as text) as {key: value} of its scalar values,
    spelled as given (trimmed); {} for no object. Lists and nested objects are left out, as the
    keyword index leaves them out (`_build._flatten`)."""
    if not text:
        return {}
    try:
        obj = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(obj, dict):
        return {}
    out: dict[str, str] = {}
    for k, v in obj.items():
        if v is None or isinstance(v, list | dict):
            continue
        value = str(v).strip() if not isinstance(v, bool) else str(v).lower()
        key = str(k).strip()
        if key and value:
            out[key] = value
    return out


@dataclass
class _Column:
    name: str  # the key as the catalog first spells it
    codes: np.ndarray  # per catalog row, the value's code (-1: the product does not say it)
    values: list[str]  # per code, the value as the catalog first spells it
    lookup: dict[str, int]  # `attribute_key(value)` -> code


class AttributeIndex:
    """Per attribute key, each catalog row's value as a code (see the module's docstring)."""

    def __init__(self, columns: dict[str, _Column], n: int):
        self.n = n
        self._columns = columns
        # keys by how many products say them (most first), ties by key
        self.keys = sorted(columns, key=lambda k: (-int((columns[k].codes >= 0).sum()), k))

    @classmethod
    def of(cls, attributes: Sequence[str]) -> AttributeIndex:
        """From the catalog's `attribute_json` column (one JSON object as text per row)."""
        n = len(attributes)
        raw: dict[str, tuple[str, dict[str, int], list[str], list[tuple[int, int]]]] = {}
        # a catalog spells its keys and values a few ways over many rows: each spelling folded
        # once (100k products with 5 attributes: 2.29 -> 1.25 CPU-s at every engine load)
        keys: dict[str, tuple[str, bool]] = {}  # spelling -> (its key, whether it is the key's own)
        folded: dict[str, str] = {}  # value spelling -> `attribute_key`
        for row, text in enumerate(attributes):
            if not text:
                continue
            # (one value per key and row: where a product spells a key two ways, the canonical
            # spelling's value, else the first's, as ingest folds them)
            said: dict[str, tuple[str, str]] = {}
            for k, v in parse_attributes(text).items():
                got = keys.get(k)
                if got is None:
                    key = key_of(k)
                    got = keys[k] = (key, attribute_key(k) == key)
                key, own = got
                if key not in said or own:
                    said[key] = (k, v)
            for key, (k, v) in said.items():
                col = raw.get(key)
                if col is None:
                    col = raw[key] = (k, {}, [], [])
                _, lookup, values, hits = col
                vk = folded.get(v)
                if vk is None:
                    vk = folded[v] = attribute_key(v)
                code = lookup.get(vk)
                if code is None:
                    code = lookup[vk] = len(values)
                    values.append(v)
                hits.append((row, code))
        columns: dict[str, _Column] = {}
        for key, (name, lookup, values, hits) in raw.items():
            codes = np.full(n, -1, np.int32)
            if hits:
                at = np.array(hits, np.int64)
                codes[at[:, 0]] = at[:, 1]
            columns[key] = _Column(name, codes, values, lookup)
        return cls(columns, n)

    def __bool__(self) -> bool:
        return bool(self._columns)

    def mask(
        self, wanted: Mapping[str, Sequence[str]], docs: np.ndarray, skip: str | None = None
    ) -> np.ndarray:
        """Per row of `docs`, whether it has one of the wanted values of every wanted key (values
        of one key ORed, keys ANDed; keys and values as `attribute_key` spells them), the key
        `skip` left out (a facet's own filter). A key or a value the catalog does not have
        matches nothing."""
        docs = np.asarray(docs, np.int64)
        keep = np.ones(len(docs), bool)
        for key, values in wanted.items():
            if key == skip or not len(docs):
                continue
            col = self._columns.get(key)
            if col is None:
                return np.zeros(len(docs), bool)
            ok = np.zeros(len(col.values) + 1, bool)  # (index 0: no value, the codes shifted by 1)
            for v in values:
                code = col.lookup.get(v)
                if code is not None:
                    ok[code + 1] = True
            keep &= ok[col.codes[docs] + 1]
        return keep

    def facets(
        self,
        docs: np.ndarray,
        wanted: Mapping[str, Sequence[str]] | None = None,
        groups: np.ndarray | None = None,
        top_keys: int = ATTRIBUTE_KEYS,
        top_values: int = ATTRIBUTE_VALUES,
    ) -> dict[str, list[dict[str, Any]]]:
        """Counts per value of the catalog's most common keys over `docs`: the products that
        match the query and every filter but the attribute ones, each key counted with the
        other keys' filters applied and not its own (disjunctive facets: with `color=red`
        chosen, the other colours still show what choosing them would find). `groups` (aligned
        with `docs`): each row's group (style), counted once per value (a style in red and in
        blue counts once under each). Values by count, ties by value; a wanted key and value is
        always listed (0 when nothing has it). Keys as the catalog first spells them."""
        wanted = dict(wanted or {})
        docs = np.asarray(docs, np.int64)
        keys = [k for k in self.keys[:top_keys]]
        keys += [k for k in wanted if k in self._columns and k not in keys]
        out: dict[str, list[dict[str, Any]]] = {}
        for key in keys:
            col = self._columns[key]
            rows = np.flatnonzero(self.mask(wanted, docs, skip=key)) if wanted else np.arange(len(docs))
            codes = col.codes[docs[rows]].astype(np.int64)
            has = codes >= 0
            codes = codes[has]
            if groups is not None and len(codes):
                g = np.asarray(groups, np.int64)[rows][has]
                width = len(col.values)
                codes = np.unique((g - g.min()) * width + codes) % width
            counts = np.bincount(codes, minlength=len(col.values))
            chosen = [col.lookup[v] for v in wanted.get(key, ()) if v in col.lookup]
            seen = np.flatnonzero(counts)
            order = sorted(seen.tolist(), key=lambda c: (-int(counts[c]), col.values[c]))[:top_values]
            order += [c for c in chosen if c not in order]
            if order:
                out[col.name] = [{"value": col.values[c], "count": int(counts[c])} for c in order]
        return out
