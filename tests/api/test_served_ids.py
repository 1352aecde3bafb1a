"""An app serving lists through the Python API can attribute shoppers' clicks to them: with
`served=True`, `recommend`, `similar(detail=True)` and `search_pages` give the
`recommendation_id` / `search_id` /v1/... gives and write the list to the exposure log as the
server writes it, so an event posted with the id is attributed (the search report's CTR per
query). Every answer says the `bundle_version` that made it. Without `served` (an offline batch)
no id is given and nothing is logged: a list nobody was shown does not count as served. The
Python twins gave neither ids nor the bundle."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import pytest

from shelfwise import Shop
from shelfwise.errors import ShelfwiseError
from tests.serving.conftest import known_users


def _exposures(work):
    from shelfwise.serving._feedback import EXPOSURES_DIR
    from shelfwise.storage._segments import iter_records

    return list(iter_records(work / EXPOSURES_DIR)) if (work / EXPOSURES_DIR).exists() else []


def test_served_lists_carry_ids_the_events_are_attributed_to(trained, tmp_path):
    from shelfwise.serving import current_bundle

    data, src = trained
    work = tmp_path / "w"
    shutil.copytree(src, work)
    shutil.rmtree(work / "spool" / "exposures", ignore_errors=True)
    shop = Shop(work)
    bundle = current_bundle(work).name
    user = known_users(data, work, 1)[0]

    # an offline batch: the bundle said, no id, nothing logged as served
    plain = shop.recommend(user, 5)
    assert plain["bundle_version"] == bundle and plain["model"] and "recommendation_id" not in plain
    (page,) = shop.search_pages(["black bike light"], 5)
    assert page["bundle_version"] == bundle and "search_id" not in page
    top = plain["items"][0]
    assert shop.similar(top, 3, detail=True)["bundle_version"] == bundle
    assert _exposures(work) == []

    # served lists: ids as /v1/... mints them, each logged under its id as the server logs it
    recs = shop.recommend([user, "someone-never-seen"], 5, served=True)
    rids = [r["recommendation_id"] for r in recs]
    assert all(r.startswith("rec_") for r in rids) and len(set(rids)) == 2
    sim = shop.similar(top, 3, detail=True, served=True)
    pages = shop.search_pages(["black bike light", "  "], 5, served=True, user_id=user)
    sid = pages[0]["search_id"]
    assert sid.startswith("srch_") and pages[1]["search_id"] is None  # (a blank query is not served)
    shop.close()  # (the buffered lists written: read here straight from the log)
    logged = {r["id"]: r for r in _exposures(work)}
    assert set(logged) == {*rids, sim["recommendation_id"], sid}
    pseudo = shop._pseudonym(user)
    assert logged[rids[0]]["kind"] == "recommendations" and logged[rids[0]]["user"] == pseudo
    assert logged[rids[0]]["items"] == recs[0]["items"] and logged[rids[0]]["bundle"] == bundle
    assert logged[sim["recommendation_id"]]["kind"] == "similar"
    assert logged[sim["recommendation_id"]]["product_id"] == top
    s = logged[sid]
    assert (s["kind"], s["user"], s["query"], s["masked"]) == ("search", pseudo, "black bike light", True)
    assert s["items"] == pages[0]["items"] and {"offset", "sort", "filtered", "match", "fallback"} <= set(s)

    # a click on the served page, posted with its id: attributed in the search report
    now = datetime.now(UTC).isoformat()
    click = {"user_id": user, "event_type": "click", "product_id": pages[0]["items"][0], "timestamp": now}
    sent = shop.send_events([{**click, "search_id": sid}, {**click, "recommendation_id": rids[0]}])
    assert sent["accepted"] == 2, sent
    shop.absorb_events()
    served = shop.search_report()["served"]
    (row,) = [q for q in served["top_queries"] if q["query"] == "black bike light"]
    assert (row["pages"], row["attributed_click_through"], row["attributed_ctr"]) == (1, 1.0, 1.0)

    with pytest.raises(ShelfwiseError, match="detail=True"):
        shop.similar(top, 3, served=True)
    with pytest.raises(ShelfwiseError, match="search_pages"):
        shop.search("black bike light", 5, served=True)  # type: ignore[call-arg]
    with pytest.raises(ShelfwiseError, match="served='yes'"):
        shop.recommend(user, 5, served="yes")  # type: ignore[call-overload]
    # a list no shopper is shown (the rules off, a model named outside the experiment) is not
    # logged as served: it would count in the A/B readout under a variant that never showed it
    for call in (
        lambda: shop.recommend(user, 5, served=True, rules=False),
        lambda: shop.recommend(user, 5, served=True, model="popularity"),
        lambda: shop.similar(top, 3, detail=True, served=True, rules=False),
        lambda: shop.search_pages(["black bike light"], 5, served=True, rules=False),
    ):
        with pytest.raises(ShelfwiseError, match="served=True logs the list shoppers are shown"):
            call()


def test_a_served_search_of_a_variant_bundle_without_an_index_is_refused_and_logs_nothing(trained, tmp_path):
    """An experiment whose variant serves a bundle without a search index (its catalog had no
    text): /v1/search answers 404 and logs nothing; `search_pages(served=True)` logged an empty
    page as served (an exposure of nothing under the variant, counted in the A/B readout). It
    now refuses the same way, with `NoSearchIndex` naming the bundle, and logs none of the
    call's pages."""
    from shelfwise import NoSearchIndex
    from shelfwise.serving import current_bundle

    _, src = trained
    work = tmp_path / "w"
    shutil.copytree(src, work)
    shutil.rmtree(work / "spool" / "exposures", ignore_errors=True)
    bare = current_bundle(work).parent / "29990101T000000000000Z"
    shutil.copytree(current_bundle(work), bare)
    shutil.rmtree(bare / "search")  # (as a bundle of a catalog without text is written)
    manifest = json.loads((bare / "manifest.json").read_text())
    manifest["files"] = {f: h for f, h in manifest["files"].items() if not f.startswith("search/")}
    manifest.pop("search", None)
    (bare / "manifest.json").write_text(json.dumps({**manifest, "version": bare.name}))
    shop = Shop(work)
    shop.set_experiments(
        {
            "experiments": [
                {
                    "name": "no-index",
                    "surface": "search",
                    "salt": "s1",
                    "variants": [{"name": "control", "weight": 0}, {"name": "bare", "bundle": bare.name}],
                }
            ]
        }
    )
    with pytest.raises(NoSearchIndex, match="no search index .*experiment 'no-index', variant 'bare'") as got:
        shop.search_pages(["black bike light", "red mug"], 5, served=True, user_id="C1")
    assert got.value.bundle == bare.name and isinstance(got.value, ShelfwiseError)
    shop.close()
    assert _exposures(work) == []
