"""The Python API's twins of the serving endpoints: `Shop.search` with `/v1/search`'s filters,
sort, paging and personalization, `Shop.suggest` (`/v1/suggest`), `Shop.profile`
(`/v1/users/{id}/profile`) and `Shop.send_events` (`POST /v1/events`) answer what the server
answers over real HTTP, with the same permissions; events sent from Python and over HTTP share
one spool and one event_id store."""

from __future__ import annotations

import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from shelfwise import AccessDenied, ShelfwiseError, Shop
from shelfwise.errors import EmptyRangeWarning
from shelfwise.serving import ServeSettings, create_app
from tests.api.conftest import FAST
from tests.serving.conftest import events_in_warehouse, known_users, serve_in_thread


@pytest.fixture
def work(trained, tmp_path: Path) -> tuple[Path, Path]:
    data, src = trained
    w = tmp_path / "w"
    shutil.copytree(src, w)
    return data, w


def _http_page(base: str, params: dict) -> dict:
    r = httpx.get(f"{base}/v1/search", params=params, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.slow
def test_search_options_suggest_and_profile_answer_what_the_server_answers(work):
    data, w = work
    shop = Shop(w)
    user = known_users(data, w, 1)[0]
    broad = shop.search_pages(["shoes"], 20)[0]
    assert broad["total"] > 3 and broad["facets"], broad
    category = broad["facets"]["category"][0]["value"]
    cases = [
        {},
        {"sort": "price_asc"},
        {"sort": "price_desc", "offset": 2},
        {"category": category},
        {"price_max": 60.0, "in_stock": True},
        {"user_id": user},
        {"user_id": f" {user} "},  # trimmed, as curation trims ids (the route did not)
        {"user_id": user, "personalized": False},
        {"user_id": ""},  # no shopper: an anonymous page
        {"price_min": 9.0, "price_max": 3.0},  # nothing in between: the same (empty) page both ways
    ]
    # a budget no page misses on a loaded machine: a degraded page (stages skipped for time)
    # would differ from the Python API's, which always runs the whole pipeline
    with serve_in_thread(create_app(w, ServeSettings(search_budget_ms=600_000))) as base:
        for opts in cases:
            swapped = opts.get("price_min", 0) > opts.get("price_max", 1e9)
            with warnings.catch_warnings(record=True) as said:  # (swapped bounds: said in Python)
                warnings.simplefilter("always")
                (mine,) = shop.search_pages(["shoes"], 5, **opts)
            assert any(w.category is EmptyRangeWarning for w in said) is swapped, opts
            theirs = _http_page(base, {"q": "shoes", "k": 5, **opts})
            assert theirs["degraded"] is False, (opts, theirs["stages"])
            assert mine["items"] == [it["product_id"] for it in theirs["items"]], opts
            for field in (
                "total", "facets", "match", "fallback", "personalized", "corrected_query", "bundle_version"
            ):  # fmt: skip
                assert mine[field] == theirs[field], (opts, field)
            # the shopper's page is personalized (else the comparison would be of two anonymous pages)
            assert mine["personalized"] is (
                str(opts.get("user_id", "")).strip() != "" and opts.get("personalized", True)
            )
        r = httpx.get(f"{base}/v1/suggest", params={"q": "bl", "k": 5}, timeout=60)
        assert shop.suggest("bl", 5) == r.json()["suggestions"] and shop.suggest("bl", 5)
        r = httpx.get(f"{base}/v1/users/{user}/profile", timeout=300)
        assert r.status_code == 200, r.text
        assert shop.profile(user) == r.json()
    # each option does what it says
    by_price = shop.search_pages(["shoes"], 5, sort="price_asc")[0]["items"]
    assert shop.search("shoes", 3, sort="price_asc", offset=2) == by_price[2:5]
    in_category = shop.search("shoes", 20, category=category)
    products = shop.table("products").set_index("product_id")["category"]
    assert in_category and all(str(products[p]).lower().startswith(category.lower()) for p in in_category)
    assert set(in_category) != set(shop.search("shoes", 20)) or broad["total"] == len(in_category)
    with pytest.raises(ShelfwiseError, match="unknown user 'nobody-at-all'"):
        shop.profile("nobody-at-all")


def test_search_options_are_checked_as_the_server_checks_them(work):
    _, w = work
    shop = Shop(w)
    for opts, said in [
        ({"colour": "red"}, "search options colour: not known"),
        ({"sort": "cheapest"}, "sort 'cheapest': one of relevance"),
        ({"offset": -1}, "offset -1: the results skipped"),
        ({"offset": 1001}, "offset 1001"),
        ({"price_min": "cheap"}, "price_min 'cheap': a price"),
        ({"price_max": True}, "price_max True"),
        ({"in_stock": "yes"}, "in_stock 'yes': True or False"),
        ({"category": 3}, "category 3: give it as text"),
        ({"user_id": 5}, "give the shop's own user id as a string"),
        ({"user_id": "u_" + "0" * 32}, "is a pseudonym"),
    ]:
        with pytest.raises(ShelfwiseError, match=said):
            shop.search("shoes", 5, **opts)
    with pytest.raises(ShelfwiseError, match="sort: filters, sort, paging"):
        shop.search(["shoes"], candidates=[["P0001"]], sort="price_asc")
    with pytest.raises(ShelfwiseError, match="k 21: the number of suggestions"):
        shop.suggest("sho", 21)
    assert shop.suggest("   ") == []


@pytest.mark.slow
def test_events_sent_from_python_are_checked_spooled_and_absorbed_once(work, monkeypatch):
    monkeypatch.setattr("shelfwise._shop.REPLAY_SECONDS", 0.0)  # (another Shop catches up at once)
    data, w = work
    shop = Shop(w)
    user = known_users(data, w, 1)[0]
    other = Shop(w)  # another object (another notebook cell, a service's sender): answers first
    top = shop.recommend(user, 5)["items"][0]
    assert other.recommend(user, 5)["items"][0] == top
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    bought = {
        "user_id": user,
        "product_id": top,
        "event_type": "purchase",
        "timestamp": now,
        "event_id": "py-1",
    }
    bad = {"user_id": user, "product_id": "NO-SUCH-PRODUCT", "event_type": "view", "timestamp": now}
    out = shop.send_events([bought, bad])
    assert (out["accepted"], out["rejected"], out["duplicates"]) == (1, 1, 0)
    assert [r["status"] for r in out["results"]] == ["accepted", "rejected"]
    assert out["results"][1]["errors"][0]["field"] == "product_id" and "do not send them again" in out["note"]
    # answers given by this Shop know the purchase at once (the default repurchase rule), and
    # so does another Shop of the workdir that had answered before it (it kept its state)
    assert top not in shop.recommend(user, 5)["items"]
    assert top not in other.recommend(user, 5)["items"]
    assert shop.pending_events() == 1
    # a retry, from Python or over HTTP, is a duplicate: one store of event_ids
    assert shop.send_events([bought])["results"][0]["status"] == "duplicate"
    with serve_in_thread(create_app(w)) as base:
        r = httpx.post(f"{base}/v1/events", json=[bought], timeout=60)
        assert r.status_code == 202 and r.json()["results"][0]["status"] == "duplicate", r.text
        r = httpx.post(f"{base}/v1/events", json=[{**bought, "event_id": "http-1"}], timeout=60)
        assert r.json()["accepted"] == 1
    assert shop.send_events([{**bought, "event_id": "http-1"}])["duplicates"] == 1
    res = shop.absorb_events()
    assert res["pending"] == 0
    from shelfwise.governance import Pseudonymizer, SecretStore

    pseudo = Pseudonymizer(SecretStore(w).pseudonym_key())(user)
    landed = events_in_warehouse(
        w, f"user_id = '{pseudo}' AND event_type = 'purchase' AND product_id = '{top}'"
    )
    assert len(landed) == 2, landed  # py-1 and http-1, each once
    reason = out["results"][1]["errors"][0]["reason"]
    rejected = shop.quarantine(table="events", reason=reason, limit=None)["rows"]
    assert any("NO-SUCH-PRODUCT" in str(row) for row in rejected), reason

    # a pandas frame's records: numpy numbers, a Timestamp, NaN for a missing field; a pseudonym
    # in place of the shop's id is rejected (it would have become a new shopper of nobody)
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(
        [
            {"user_id": user, "product_id": top, "event_type": "view", "timestamp": pd.Timestamp(now),
             "value": np.float64(2.5), "quantity": np.int64(1), "session_id": np.nan},
            {"user_id": pseudo, "product_id": top, "event_type": "view", "timestamp": pd.Timestamp(now),
             "value": np.float64(1.0), "quantity": np.int64(1), "session_id": "s1"},
        ]
    )  # fmt: skip
    got = shop.send_events(frame.to_dict("records"))
    assert [r["status"] for r in got["results"]] == ["accepted", "rejected"], got
    assert "pseudonym" in got["results"][1]["errors"][0]["detail"]
    r_http = None
    with serve_in_thread(create_app(w)) as base:  # the route rejects it alike
        r_http = httpx.post(
            f"{base}/v1/events", json=[{**bad, "product_id": top, "user_id": pseudo}], timeout=60
        )
    assert r_http.status_code == 422 and "pseudonym" in r_http.text

    for given, said in [
        ({"user_id": user}, "events: a list of events"),
        ([], "events: an empty list"),
        ("[]", "events: a list of events"),
        ([bought] * 1001, "1001 in one call"),
    ]:
        with pytest.raises(ShelfwiseError, match=said):
            shop.send_events(given)


@pytest.mark.slow
def test_a_service_sends_events_and_reads_profiles_as_over_http_and_nothing_else(work):
    """The twins of endpoints a service may call need what the endpoints need (`events.post`,
    `insights.profile`); the batch answers (`recommend`, `search`: model choices, no rules,
    explanations the API does not offer) stay with the people's roles."""
    data, w = work
    ada = Shop(w, as_="ada", api_key=Shop(w).add_person("ada", "admin"))
    svc = Shop(w, as_="shopfront", api_key=ada.add_person("shopfront", "service"))
    user = known_users(data, w, 1)[0]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {"user_id": user, "product_id": ada.search("shoes", 1)[0], "event_type": "view", "timestamp": now}
    assert svc.send_events([event])["accepted"] == 1
    assert svc.profile(user)["user_id"] == user
    for call in (
        lambda: svc.recommend(user, 3),
        lambda: svc.search("shoes", 3),
        lambda: svc.explain(user, "P1"),
    ):
        with pytest.raises(AccessDenied, match="shopfront \\(role service\\) may not"):
            call()
    with pytest.raises(AccessDenied, match="shopfront \\(role service\\) may not train"):
        svc.train(models=["popularity"], **FAST)
    ann = Shop(w, as_="ann", api_key=ada.add_person("ann", "steward"))
    with pytest.raises(AccessDenied, match="ann \\(role steward\\) may not events.post"):
        ann.send_events([event])
    # who reads lists and reports does not write the shop's purchases (an analyst's key posted a
    # 999,999 purchase into an experiment's revenue); whoever sends is named beside the events
    val = Shop(w, as_="val", api_key=ada.add_person("val", "analyst"))
    assert val.recommend(user, 3)["items"]
    with pytest.raises(AccessDenied, match="val \\(role analyst\\) may not events.post"):
        val.send_events([{**event, "event_type": "purchase", "value": 999999}])
    from shelfwise.serving._feedback import absorb

    rep = absorb(w)
    assert rep["posted_by"]["shopfront"] >= 1 and "val" not in rep["posted_by"], rep
    entry = [e for e in ada.audit(limit=50) if e["action"] == "events.absorb"][-1]
    assert entry["details"]["posted_by"] == rep["posted_by"]
