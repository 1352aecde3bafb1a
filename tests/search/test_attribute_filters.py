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


def _shop_engine(path):  # type: ignore[no-untyped-def]
    """60 clothes in 4 colours and 3 sizes, retrieving 5 deep: a filter on one colour and size
    (5 products) leaves a page to fill from deeper in the ranking."""
    from shelfwise.search import SearchEngine

    rng = np.random.default_rng(7)
    nouns, adjs = ("coat", "dress", "scarf", "boots", "shirt"), ("warm", "light", "wool", "linen")
    colours, sizes = ("red", "blue", "green", "black"), ("S", "M", "L")
    rows = [(nouns[i % 5], adjs[(i // 5) % 4], colours[i % 4], sizes[(i // 4) % 3]) for i in range(60)]
    ids = [f"p{i:02d}" for i in range(60)]
    titles = [f"{a} {n} in {c} {rng.choice(['classic', 'soft', 'cosy'])}" for n, a, c, _ in rows]
    cat = SearchCatalog(
        ids,
        titles,
        brand=[("Mira", "Oak", "Luna")[i % 3] for i in range(60)],
        attribute_json=[json.dumps({"color": c, "size": z}) for _, _, c, z in rows],
    )
    return SearchEngine(path, candidates=5).build(cat, popularity=np.ones(60, np.float32))


def test_a_narrow_filter_ranks_the_allowed_products_as_the_unfiltered_search_does(tmp_path, monkeypatch):
    """A narrow filter's deeper retrievals fuse only the products it allows (their ranks in the
    whole top lists kept: the fused score each has unfiltered), not the hundreds it drops: the
    page is the unfiltered ranking restricted to the allowed products, at a fraction of the work."""
    eng = _shop_engine(tmp_path / "s")
    fused: list[int] = []
    fuse = eng._fuse
    monkeypatch.setattr(
        eng, "_fuse", lambda found, *a: (fused.append(len(set().union(*found))), fuse(found, *a))[1]
    )
    rows = np.arange(60)
    for filters in (
        Filters(attributes={"color": "red", "size": "M"}),
        Filters(brand="Oak", attributes={"color": ["blue", "green"], "size": "s"}),
    ):
        allowed = {f"p{i:02d}" for i in rows[eng._filter_mask(filters, rows)]}
        assert 0 < len(allowed) < 10
        for level in ("fused", "lexical"):
            for q in ("warm wool coat", "light linen dress", "soft scarf"):
                fused.clear()
                page = eng.query(q, k=10, filters=filters, level=level)
                assert page["depth"] == 60, (q, level)  # (it did retrieve deeper)
                # the deeper retrievals fused only the allowed products
                assert max(fused[1:]) <= len(allowed), (q, level, fused)
                whole = eng.query(q, k=60, level=level)
                expected = [i for i in whole["items"] if i["product_id"] in allowed]
                assert expected, (q, level)
                assert page["items"] == expected[:10], (q, level)


def test_a_filter_key_is_folded_as_ingest_folds_the_catalogs_keys() -> None:
    """Ingest folds `Colour`, `Farbe`, `couleur` into `color`; a filter on `colour` or `Farbe`
    gave an empty page. The filter's key is folded the same way, and a catalog curated before
    the fold (its key still `colour`) is found by `color` too."""
    cat = _catalog()  # (its key spelled `Color`)
    index = AttributeIndex.of(cat.attribute_json)
    rows = np.arange(len(IDS))
    for key in ("colour", "Farbe", " COULEUR ", "color"):
        got = Filters(attributes={key: "red"}).mask(cat, rows, attributes=index)
        assert _ids(got) == ["A-S", "A-M", "C-S"], key
    assert repr(Filters(attributes={"Farbe": "Red"})) == repr(Filters(attributes={"color": "red"}))
    assert _ids(Filters(attributes={"Größe": "m"}).mask(cat, rows, attributes=index)) == ["A-M", "B-M", "C-M"]
    # an older catalog's `colour` (and one product spelling it both ways: the canonical wins)
    old = SearchCatalog(
        ["P", "Q"],
        ["p", "q"],
        attribute_json=[json.dumps({"colour": "Navy"}), json.dumps({"colour": "Red", "color": "Navy"})],
    )
    idx = AttributeIndex.of(old.attribute_json)
    got = Filters(attributes={"color": "navy"}).mask(old, np.arange(2), attributes=idx)
    assert got.tolist() == [True, True]
    assert not Filters(attributes={"colour": "red"}).mask(old, np.arange(2), attributes=idx).any()
