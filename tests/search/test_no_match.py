"""The no-match rule on tiny catalogs: a meaningless query gets no results (the popular list as a
fallback that says it is one), and a query with no shared word but a meaning (a synonym) still
gets the products it means, whatever the catalog's size. (A catalog-wide threshold - the best
cosine 64 random strings reach against the catalog - sent "cutlery" and "headset" to the
fallback on the 8-product catalog with a Chinese title, and every synonym on 30 products.)"""

from __future__ import annotations

import numpy as np
import pytest

from shelfwise.search import SearchCatalog, SearchEngine

EIGHT = {
    "p1": "Red running shoes for men",
    "p2": "Trail running shoe, waterproof",
    "p3": "Dark chocolate cake mix",
    "p4": "Stainless steel kitchen knife",
    "p5": "无线蓝牙耳机 降噪",
    "p6": "Wireless bluetooth headphones, noise cancelling",
    "p7": "12 in. angle bracket, galvanized",
    "p8": "Garden hose 50 ft",
}
THIRTY = [
    ("Kitcho deluxe pillow", "Home > Bedding"),
    ("Luma slim jeans", "Fashion > Clothing"),
    ("Orbit desk lamp", "Home > Lighting"),
    ("Cedar garden hose 25 ft", "Garden > Watering"),
    ("Nova wireless mouse", "Electronics > Computers"),
    ("Aria bluetooth speaker", "Electronics > Audio"),
    ("Polar down jacket", "Fashion > Outerwear"),
    ("Summit hiking boots", "Fashion > Shoes"),
    ("Vita stainless steel water bottle", "Sports > Hydration"),
    ("Terra ceramic plant pot", "Garden > Pots"),
    ("Zen yoga mat", "Sports > Fitness"),
    ("Chef santoku knife", "Home > Kitchen"),
    ("Brew french press coffee maker", "Home > Kitchen"),
    ("Pixel mechanical keyboard", "Electronics > Computers"),
    ("Echo noise cancelling headphones", "Electronics > Audio"),
    ("Sprout organic tomato seeds", "Garden > Seeds"),
    ("Luna silk pajamas", "Fashion > Sleepwear"),
    ("Atlas world map poster", "Home > Decor"),
    ("Bolt cordless drill", "Tools > Power tools"),
    ("Grip adjustable wrench", "Tools > Hand tools"),
    ("Frost stand mixer", "Home > Kitchen"),
    ("Pebble cotton bath towel", "Home > Bath"),
    ("Swift road bicycle helmet", "Sports > Cycling"),
    ("Ember scented candle", "Home > Decor"),
    ("Nimbus memory foam mattress", "Home > Bedding"),
    ("Ranger camping tent", "Sports > Camping"),
    ("Drift sunglasses", "Fashion > Accessories"),
    ("Quill fountain pen", "Office > Writing"),
    ("Harbor leather wallet", "Fashion > Accessories"),
    ("Clover baby stroller", "Baby > Travel"),
]
NONSENSE = ("asdkjhqwe", "qwrtzp", "fhqwhgads", "mnbvcx", "zzzzz")


def engine(tmp_path, titles: list[str], category: list[str] | None = None) -> SearchEngine:
    ids = [f"p{i + 1}" for i in range(len(titles))]
    pop = np.arange(len(ids), 0, -1, dtype=np.float32)  # p1 the most popular
    cat = SearchCatalog(ids, titles, category=category or [])
    return SearchEngine(tmp_path / "search", candidates=len(ids)).build(cat, popularity=pop)


@pytest.mark.parametrize("level", ["fused", "lexical"])
def test_on_eight_products_nonsense_falls_back_and_synonyms_find_their_product(tmp_path, level):
    eng = engine(tmp_path, list(EIGHT.values()))
    for q in NONSENSE:
        page = eng.query(q, 3, level=level)
        assert page["match"] == "none" and page["total"] == 0, q
        assert page["fallback"] == "popular" and page["items"][0]["product_id"] == "p1"
    for q, want in (("cutlery", "p4"), ("headset", "p6"), ("sneakers", "p1")):
        page = eng.query(q, 3, level=level)
        assert page["match"] == "semantic_only" and page["fallback"] is None, q
        assert want in [it["product_id"] for it in page["items"][:2]], (q, page["items"])


def test_on_thirty_products_the_same(tmp_path):
    eng = engine(tmp_path, [t for t, _ in THIRTY], [c for _, c in THIRTY])
    for q in NONSENSE:
        page = eng.query(q, 5, level="fused")
        assert page["match"] == "none" and page["fallback"] == "popular", q
    ids = {t: f"p{i + 1}" for i, (t, _) in enumerate(THIRTY)}
    for q, want in (
        ("earbuds", "Echo noise cancelling headphones"),
        ("cutlery", "Chef santoku knife"),
        ("sleeping bag shelter", "Ranger camping tent"),
        ("pushchair", "Clover baby stroller"),
    ):
        page = eng.query(q, 5, level="fused")
        assert page["match"] == "semantic_only", q
        assert ids[want] in [it["product_id"] for it in page["items"][:3]], (q, page["items"])


def test_filters_that_leave_nothing_are_no_match_and_categories_match_whole_levels(tmp_path):
    """A filter no product passes answered an empty page that said `semantic_only`; a category
    filter was a raw string prefix ("Fashion>Shoes" found nothing next to "Fashion > Shoes",
    "Fash" found Fashion)."""
    from shelfwise.search import Filters

    eng = engine(tmp_path, [t for t, _ in THIRTY], [c for _, c in THIRTY])
    for f in (Filters(category="Nope"), Filters(price_min=100, price_max=10), Filters(category="Fash")):
        page = eng.query("hiking boots", 5, filters=f)
        assert page["items"] == [] and page["total"] == 0 and page["match"] == "none", (f, page["match"])
    tight = eng.query("hiking boots", 5, filters=Filters(category="fashion>shoes"))
    assert [it["product_id"] for it in tight["items"]] == ["p8"] and tight["match"] == "keyword"
    assert eng.query("hiking boots", 5, filters=Filters(category="Fashion > "))["items"]  # a trailing ">"
    top = eng.query("jacket", 5, filters=Filters(category=" Fashion "))
    assert top["items"] and all(
        THIRTY[int(it["product_id"][1:]) - 1][1].startswith("Fashion") for it in top["items"]
    )
