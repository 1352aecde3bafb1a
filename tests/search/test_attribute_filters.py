"""Attribute filters and facets (`attributes` JSON: colour, size, ...) on a small catalog with a
known answer: values of one key ORed, keys ANDed, compared case-insensitively; facets counted
per value, by style where the catalog has styles, each key without its own filter."""

from __future__ import annotations

import json

import numpy as np

from shelfwise.search import Filters
from shelfwise.search._attributes import AttributeIndex
from shelfwise.search._retrievers import SearchCatalog

# style -> the colour of each of its sizes S, M, L, XL
COLOURS = {
    "A": ("red", "red", "blue", "blue"),
    "B": ("blue", "blue", "blue", "blue"),
    "C": ("Red", "green", "green", "green"),  # (a value spelt another way is the same value)
}
SIZES = ("S", "M", "L", "XL")
ROWS = [(s, z, c) for s, cs in COLOURS.items() for z, c in zip(SIZES, cs, strict=True)]
IDS = [f"{s}-{z}" for s, z, _ in ROWS] + ["D", "E"]
GROUPS = np.array([ord(s) for s, _, _ in ROWS] + [100, 101], np.int64)


def _catalog() -> SearchCatalog:
    attrs = [json.dumps({"Color": c, "size": z}) for _, z, c in ROWS]
    attrs += [json.dumps({"color": "brown", "tags": ["a", "b"]}), ""]  # a belt: no size; no attributes
    return SearchCatalog(IDS, [f"product {p}" for p in IDS], attribute_json=attrs)


def _ids(mask: np.ndarray) -> list[str]:
    return [IDS[i] for i in np.flatnonzero(mask)]


def test_values_of_a_key_are_ored_and_keys_anded_case_insensitively() -> None:
    cat = _catalog()
    index = AttributeIndex.of(cat.attribute_json)
    rows = np.arange(len(IDS))
    red = Filters(attributes={"color": "RED"})
    assert _ids(red.mask(cat, rows, attributes=index)) == ["A-S", "A-M", "C-S"]
    assert _ids(red.mask(cat, rows)) == ["A-S", "A-M", "C-S"]  # (the index made from the catalog)
    red_or_green_m = Filters(attributes={" Color ": ["red", "green"], "SIZE": "m"})
    assert _ids(red_or_green_m.mask(cat, rows, attributes=index)) == ["A-M", "C-M"]
    # a key or a value the catalog does not have matches nothing
    assert not Filters(attributes={"fit": "slim"}).mask(cat, rows, attributes=index).any()
    assert not Filters(attributes={"color": "purple"}).mask(cat, rows, attributes=index).any()
    # equal filters have one spelling (the search cache's key); none is not active
    assert repr(Filters(attributes={"size": ["M", "s"], "color": "red"})) == repr(
        Filters(attributes={"Color": ["Red"], "size": ["S", "m", "M"]})
    )
    assert not Filters(attributes={"color": []}).active() and not Filters().active()
    assert Filters(attributes={"color": "red"}).without_attributes() == Filters()


def test_facets_count_styles_under_each_value_without_their_own_filter() -> None:
    index = AttributeIndex.of(_catalog().attribute_json)
    dresses = np.arange(12)  # the query's matches (the three dress styles, four sizes each)
    got = index.facets(dresses, groups=GROUPS[dresses])
    # a style in red and blue counts once under each; keys as the catalog first spells them
    assert got == {
        "Color": [
            {"value": "blue", "count": 2},
            {"value": "red", "count": 2},
            {"value": "green", "count": 1},
        ],
        "size": [{"value": v, "count": 3} for v in ("L", "M", "S", "XL")],
    }
    # chosen red: the colours still count as without it, the sizes count the red variants
    wanted = Filters(attributes={"color": "red"}).attributes
    got = index.facets(dresses, wanted, GROUPS[dresses])
    assert got["Color"] == [
        {"value": "blue", "count": 2},
        {"value": "red", "count": 2},
        {"value": "green", "count": 1},
    ]
    assert got["size"] == [{"value": "S", "count": 2}, {"value": "M", "count": 1}]
    # red and M: the colours of the M variants, the sizes of the red ones
    wanted = Filters(attributes={"color": "red", "size": "M"}).attributes
    got = index.facets(dresses, wanted, GROUPS[dresses])
    assert got["Color"] == [{"value": v, "count": 1} for v in ("blue", "green", "red")]
    assert got["size"] == [{"value": "S", "count": 2}, {"value": "M", "count": 1}]
    # a chosen value that nothing matching has is listed at 0 (the shopper sees what they chose)
    wanted = Filters(attributes={"color": "red", "size": "XL"}).attributes
    got = index.facets(dresses, wanted, GROUPS[dresses])
    assert got["size"] == [
        {"value": "S", "count": 2},
        {"value": "M", "count": 1},
        {"value": "XL", "count": 0},
    ]
    # without styles each product counts; a key nothing matching has is left out
    got = index.facets(np.arange(len(IDS)), Filters(attributes={"color": "purple"}).attributes)
    assert got["Color"][0] == {"value": "blue", "count": 6} and {"value": "brown", "count": 1} in got["Color"]
    assert "size" not in got  # (nothing is purple)


def test_facets_are_bounded() -> None:
    attrs = [json.dumps({f"k{j}": f"v{i % 30}" for j in range(12)}) for i in range(60)]
    got = AttributeIndex.of(attrs).facets(np.arange(60), top_keys=8, top_values=20)
    assert len(got) == 8 and all(len(v) == 20 for v in got.values())
    assert all(f["count"] == 2 for v in got.values() for f in v)
