"""The query-time path under a budget: pipeline levels and the stages they run, the no-match
rule (calibrated on the catalog), and the query caches."""

from __future__ import annotations

import numpy as np
import pytest

from shelfwise.search import Filters, SearchCatalog, SearchEngine

TITLES = {
    "p1": "Red running shoes for men",
    "p2": "Trail running shoe, waterproof",
    "p3": "Dark chocolate cake mix",
    "p4": "Stainless steel kitchen knife",
    "p5": "Wireless bluetooth headphones, noise cancelling",
    "p6": "12 in. angle bracket, galvanized",
    "p7": "Garden hose 50 ft",
    "p8": "Cotton summer dress, floral",
}
POPULARITY = np.array([3, 1, 0, 9, 5, 0, 7, 2], np.float32)  # p4, p7, p5, p1, p8, p2 sell


@pytest.fixture(scope="module")
def ranked_engine(tmp_path_factory):
    """The 8 products with popularity and a ranker (kept whatever its held-out score: the test
    is about which stages run, not about its quality)."""
    ids = sorted(TITLES)
    cat = SearchCatalog(ids, [TITLES[p] for p in ids], category=["Shop > Things"] * len(ids))
    eng = SearchEngine(tmp_path_factory.mktemp("lv") / "search", candidates=8)
    eng.build(cat, popularity=POPULARITY)
    queries = {f"q{i}": t for i, t in enumerate(["running shoes", "knife", "garden hose", "headphones"] * 3)}
    best = {"running shoes": "p1", "knife": "p4", "garden hose": "p7", "headphones": "p5"}
    gains = {q: {best[t]: 2.0} for q, t in queries.items()}
    eng.fit_ranker(queries, gains, holdout=0.0, always_keep=True)
    assert eng.ranker_ is not None
    return eng


def test_each_level_runs_its_stages_and_says_so(ranked_engine):
    eng = ranked_engine
    assert eng.levels() == ("full", "fused", "lexical")
    full = eng.query("running shoes", 5)
    assert full["stages"] == ["lexical", "semantic", "rerank"] and full["level"] == "full"
    fused = eng.query("running shoes", 5, level="fused")
    assert fused["stages"] == ["lexical", "semantic", "fusion"]
    lexical = eng.query("running shoes", 5, level="lexical")
    assert lexical["stages"] == ["lexical"]
    # BM25 alone finds only the products with the words; every level puts them first
    assert {i["product_id"] for i in lexical["items"]} == {"p1", "p2"}
    for page in (full, fused, lexical):
        assert {i["product_id"] for i in page["items"][:2]} == {"p1", "p2"} and page["match"] == "keyword"
    with pytest.raises(ValueError, match="level"):
        eng.query("shoes", level="everything")


def test_without_a_ranker_full_is_fusion(tmp_path):
    ids = sorted(TITLES)
    eng = SearchEngine(tmp_path / "s", candidates=8).build(SearchCatalog(ids, [TITLES[p] for p in ids]))
    assert eng.levels() == ("fused", "lexical")
    page = eng.query("garden hose", 3)
    assert page["level"] == "fused" and page["stages"] == ["lexical", "semantic", "fusion"]
    assert page["items"][0]["product_id"] == "p7"


def test_a_query_that_matches_nothing_gets_no_results_and_a_fallback_that_says_so(ranked_engine):
    eng = ranked_engine
    popular = [eng.catalog.product_ids[i] for i in np.argsort(-POPULARITY, kind="stable")[:3]]
    for q in ("asdkjhqwe", "zzzzqqqq xxyyzz", "qwerty"):
        for level in ("full", "fused", "lexical"):
            page = eng.query(q, 3, level=level)
            assert page["match"] == "none" and page["total"] == 0, (q, level)
            assert page["fallback"] == "popular" and [i["product_id"] for i in page["items"]] == popular
            assert "semantic" in page["stages"]  # the encoder was asked, even at the lexical level
    # the rule: no keyword, and no product closer to the query than its nearest random string
    gib, real = (eng.encode_queries([t])[0].main for t in ("asdkjhqwe", "earphones"))

    def best(v: np.ndarray) -> float:
        return float(np.max(np.asarray(eng.semantic_.embeddings_) @ v))

    assert best(gib) < eng.no_match_threshold(gib) and best(real) >= eng.no_match_threshold(real)
    # a query with no shared word but a meaning is still answered by the encoder
    page = eng.query("earphones", 3, level="lexical")
    assert page["match"] == "semantic_only" and page["items"][0]["product_id"] == "p5"
    assert page["fallback"] is None
    # the fallback respects filters: nothing in that category, nothing to show
    none = eng.query("asdkjhqwe", 3, filters=Filters(category="Garden"))
    assert none["items"] == [] and none["fallback"] is None


def test_no_fallback_without_popularity(tmp_path):
    ids = sorted(TITLES)
    eng = SearchEngine(tmp_path / "s", candidates=8).build(SearchCatalog(ids, [TITLES[p] for p in ids]))
    page = eng.query("asdkjhqwe", 3)
    assert page["match"] == "none" and page["items"] == [] and page["fallback"] is None


def test_query_vectors_and_corrections_are_cached(ranked_engine, monkeypatch):
    eng = ranked_engine
    calls: list[list[str]] = []
    encode = eng.semantic_.encode_queries
    monkeypatch.setattr(
        eng.semantic_, "encode_queries", lambda texts: calls.append(list(texts)) or encode(texts)
    )
    batch = eng.encode_queries(["blue dress", "steel knife", "blue dress"])
    assert calls == [["blue dress", "steel knife"]]  # one call, each distinct text once
    counts: list[int] = []
    again = eng.encode_queries(["steel knife", "hose for the garden"], encoded=counts)
    assert counts == [1]  # the call reports what it encoded: the cached text is not counted
    eng.encode_queries(["steel knife", "blue dress"], encoded=counts)
    assert counts == [1, 0] and calls[-1] == ["hose for the garden"]
    assert calls[-1] == ["hose for the garden"] and np.array_equal(again[0].main, batch[1].main)
    eng.query("steel knife", 3, vecs=None)
    assert calls[-1] == ["hose for the garden"]  # the query's vector came from the cache
    assert eng.correct("runing shoes") == "running shoes"
    monkeypatch.setattr(eng.speller_, "correct", lambda text: pytest.fail("not cached"))
    assert eng.correct("runing shoes") == "running shoes"


def test_coded_facets_equal_the_counted_ones(tmp_path):
    """The query path counts facets from per-product codes: the same values in the same order
    as counting the catalog's strings (ties in order of first appearance)."""
    from shelfwise.search._shopper import facets

    ids = sorted(TITLES)
    cats = ["Shoes > Men", "Shoes > Trail", "Food > Cakes", "Home > Kitchen", "Audio", "", "Garden", "Shoes"]
    brands = ["Acme", "Bolt", "", "Acme", "Cup", "Bolt", "", "Acme"]
    cat = SearchCatalog(
        ids,
        [TITLES[p] for p in ids],
        category=cats,
        brand=brands,
        price=[10.0, 20.0, float("nan"), 5.0, 99.0, 3.5, 12.0, 40.0],
        in_stock=[True, False, True, True, True, False, True, True],
    )
    eng = SearchEngine(tmp_path / "search", candidates=8)
    eng.build(cat)
    for docs in ([7, 0, 1, 3], [5, 6], list(range(8)), []):
        d = np.array(docs, np.int64)
        assert eng._facets(d) == facets(cat, d)


def test_a_filter_that_leaves_no_keyword_match_is_judged_alike_at_every_level(tmp_path):
    """ "running shoes" in Apparel: the products with the words are all in Sports. The full and
    fused levels then asked the encoder (a semantic match: jogging trainers); the lexical level,
    having found keywords before the filter, answered "none". Every level asks the encoder when
    no product with a word passes the filters."""
    titles = {
        "p1": ("Red running shoes for men", "Sports"),
        "p2": ("Trail running shoe, waterproof", "Sports"),
        "p3": ("Jogging trainers for women, breathable mesh sneakers", "Apparel"),
        "p4": ("Cotton summer dress, floral", "Apparel"),
        "p5": ("Stainless steel kitchen knife", "Home"),
    }
    ids = sorted(titles)
    cat = SearchCatalog(ids, [titles[p][0] for p in ids], category=[titles[p][1] for p in ids])
    eng = SearchEngine(tmp_path / "s", candidates=5).build(cat, popularity=np.ones(len(ids), np.float32))
    pages = {
        lv: eng.query("running shoes", 3, filters=Filters(category="Apparel"), level=lv)
        for lv in eng.levels()
    }
    matches = {lv: p["match"] for lv, p in pages.items()}
    assert len(set(matches.values())) == 1, matches
    assert "semantic" in pages["lexical"]["stages"]  # (the encoder ran)
    assert {i["product_id"] for i in pages["lexical"]["items"]} <= {"p3", "p4"}


def test_a_shop_without_events_falls_back_to_its_judged_products_in_the_cold_start_order(tmp_path):
    """Day 0 (a catalog and search judgments, no events): a query matching nothing got an empty
    page while recommendations had a list from the judgments; and the two "popular" lists broke
    ties differently (catalog order against judged gain). The fallback follows the cold-start
    order: popularity, ties by the judged gain, then catalog order; without events, the gain."""
    ids = sorted(TITLES)
    eng = SearchEngine(tmp_path / "s", candidates=8).build(SearchCatalog(ids, [TITLES[p] for p in ids]))
    gain = np.zeros(len(ids), np.float32)
    gain[[3, 1]] = [2.0, 1.0]
    eng.prior_sum_ = gain
    page = eng.query("asdkjhqwe", 3)
    assert page["fallback"] == "popular" and [i["product_id"] for i in page["items"]] == [ids[3], ids[1]]
    pop = np.zeros(len(ids), np.float32)
    pop[[0, 1, 3]] = [1.0, 5.0, 5.0]  # 1 and 3 tie: the judged gain puts 3 first
    eng.popularity_ = pop
    page = eng.query("asdkjhqwe", 3)
    assert [i["product_id"] for i in page["items"]] == [ids[3], ids[1], ids[0]]
