"""A query that matches nothing on the demo shop, over HTTP: no results, and the popular list as a
fallback that says it is one; a synonym with no shared word still finds what it means."""

from __future__ import annotations


def test_nonsense_gets_the_labelled_fallback_and_a_synonym_its_products(server):
    c = server.client
    for q in ("asdkjhqwe", "qwrtzp", "fhqwhgads"):
        page = c.get("/v1/search", params={"q": q, "k": 5}).json()
        assert page["match"] == "none" and page["total"] == 0, (q, page)
        assert page["fallback"] == "popular" and len(page["items"]) == 5
    page = c.get("/v1/search", params={"q": "denim trousers", "k": 3}).json()
    assert page["match"] == "semantic_only" and page["fallback"] is None
    assert all("Jeans" in it["title"] for it in page["items"]), page["items"]
