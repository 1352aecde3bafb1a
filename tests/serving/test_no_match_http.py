"""A query that matches nothing on the demo shop, over HTTP: no results, and the popular list as a
fallback that says it is one; a synonym with no shared word still finds what it means. The
served-page log says so too: search analytics count the fallback page as a no-result search."""

from __future__ import annotations

import time


def test_nonsense_gets_the_labelled_fallback_and_a_synonym_its_products(server):
    from shelfwise.search._analytics import served_search_pages

    c = server.client
    ids = {}
    for q in ("asdkjhqwe", "qwrtzp", "fhqwhgads"):
        page = c.get("/v1/search", params={"q": q, "k": 5}).json()
        assert page["match"] == "none" and page["total"] == 0, (q, page)
        assert page["fallback"] == "popular" and len(page["items"]) == 5
        ids[page["search_id"]] = q
    page = c.get("/v1/search", params={"q": "denim trousers", "k": 3}).json()
    assert page["match"] == "semantic_only" and page["fallback"] is None
    assert all("Jeans" in it["title"] for it in page["items"]), page["items"]
    ids[page["search_id"]] = "denim trousers"
    logged: dict[str, dict] = {}
    deadline = time.monotonic() + 20  # the log is written every 0.5 s, in one batch
    while len(logged) < len(ids) and time.monotonic() < deadline:
        time.sleep(0.3)
        logged = {r["id"]: r for r in served_search_pages(server.workdir) if r.get("id") in ids}
    assert len(logged) == len(ids)
    for sid, rec in logged.items():
        if ids[sid] == "denim trousers":
            assert (rec["match"], rec["fallback"]) == ("semantic_only", None)
        else:
            assert (rec["match"], rec["fallback"]) == ("none", "popular"), rec
