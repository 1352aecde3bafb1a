"""Consent and the non-profiling option over real HTTP: a withdrawal through
`PUT /v1/users/{id}/consent` on one replica makes the very next answer on another replica (both
sharing Redis) the list a never-seen shopper gets; `?personalized=false` on every list endpoint;
a steward's `shelfwise privacy consent` reaches a running server without Redis; the server's and
the shop's non-personalization settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from shelfwise.governance import AuditLog, Pseudonymizer, SecretStore
from tests.cli.test_cli import sw
from tests.governance.test_consent import FAST_TRAIN, plant_shop, trained_planted_shop
from tests.serving.conftest import Server
from tests.serving.test_http import wait_for

pytestmark = pytest.mark.slow  # trains a tiny shop and starts servers: ~1 min on a shared machine


@pytest.fixture(scope="module")
def consent_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The planted shop as `train --data D` (FAST_TRAIN) made it: a copy of tests/governance's
    (trained once per run)."""
    yield trained_planted_shop(tmp_path_factory)


def recs(server: Server, user: str, **params: object) -> dict:
    r = server.client.get(f"/v1/recommendations/{user}", params={"k": 4, **params})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_withdrawal_on_one_replica_is_obeyed_by_the_next_answer_of_another(consent_shop, redis_url):
    work = consent_shop
    a = Server(work, "--redis-url", redis_url, "--absorb-seconds", "0", "--reload-seconds", "0")
    b = Server(work, "--redis-url", redis_url, "--absorb-seconds", "0", "--reload-seconds", "0")
    try:
        cold = recs(b, "never-seen-shopper")
        assert cold["source"] == "cold_start" and cold["personalized"] is False
        before = recs(b, "shopper-2")
        assert before["personalized"] is True and before["source"] != "cold_start"

        put = a.client.put("/v1/users/shopper-2/consent", json={"personalization": False, "source": "banner"})
        assert put.status_code == 200, put.text
        assert put.json() == {
            "user_id": "shopper-2",
            "consent": {"personalization": False, "marketing": True},
            "recorded": 1,
            "known": True,  # (the shop has seen the id: it is no typo's consent)
        }
        for replica in (b, a):  # the next request, on either replica
            after = recs(replica, "shopper-2")
            assert (after["source"], after["personalized"], after["items"]) == (
                "cold_start",
                False,
                cold["items"],
            )

        # consent given again on the other replica: personalized again everywhere
        assert b.client.put("/v1/users/shopper-2/consent", json={"personalization": True}).status_code == 200
        assert recs(a, "shopper-2")["personalized"] is True

        # shopper-1 withdrew in the users table before training: never personalized
        assert recs(a, "shopper-1")["source"] == "cold_start"

        # the non-profiling option, on every endpoint
        opted = recs(a, "shopper-10", personalized="false")
        assert (opted["source"], opted["personalized"], opted["items"]) == (
            "cold_start",
            False,
            cold["items"],
        )
        assert recs(a, "shopper-10")["personalized"] is True
        sim = a.client.get("/v1/items/p1/similar", params={"k": 3, "personalized": "false"}).json()
        assert sim["personalized"] is False and sim["items"]
        page = a.client.get(
            "/v1/search", params={"q": "mug", "user_id": "shopper-10", "personalized": "false"}
        ).json()
        assert page["personalized"] is False

        # bad requests
        assert a.client.put("/v1/users/shopper-2/consent", json={}).status_code == 422
        assert a.client.put("/v1/users/shopper-2/consent", json={"profiling": False}).status_code == 422
        assert a.client.put("/v1/users/shopper-2/consent", json={"marketing": "perhaps"}).status_code == 422
    finally:
        a.stop()
        b.stop()
    # versioned and audited: pseudonyms, never the shop's ids
    pseudo = Pseudonymizer(SecretStore(work).pseudonym_key())("shopper-2")
    mine = [
        e
        for e in AuditLog(work).entries()
        if e["action"] == "privacy.consent" and e["details"].get("pseudonym") == pseudo
    ]
    assert [(e["details"]["changes"], e["details"]["source"]) for e in mine] == [
        ({"personalization": False}, "banner"),
        ({"personalization": True}, "api"),
    ]
    assert "shopper-2" not in (work / "audit" / "audit.jsonl").read_text()


def test_a_stewards_withdrawal_reaches_a_running_server_without_redis(consent_shop):
    work = consent_shop
    s = Server(work, "--absorb-seconds", "0", "--reload-seconds", "0")
    try:
        assert recs(s, "shopper-3")["personalized"] is True
        sw("privacy", "consent", "--workdir", str(work), "--user", "shopper-3", "--personalization", "no")
        # another process's write is read within the view's follow interval (0.1 s) of a request;
        # asked again until it shows (a busy CI machine answered once after a single 0.2 s wait
        # with the state before the change): the bound is generous, the promise is "soon"
        wait_for(lambda: recs(s, "shopper-3")["source"] == "cold_start")
        # the shop-wide setting: nobody is personalized
        (work / "config").mkdir(exist_ok=True)
        (work / "config" / "privacy.json").write_text(json.dumps({"personalized_serving": False}))
        try:
            wait_for(lambda: recs(s, "shopper-10")["personalized"] is False)
        finally:
            (work / "config" / "privacy.json").unlink()
        wait_for(lambda: recs(s, "shopper-10")["personalized"] is True)
    finally:
        s.stop()
        sw("privacy", "consent", "--workdir", str(work), "--user", "shopper-3", "--personalization", "yes")


def test_serve_no_personalization(consent_shop):
    s = Server(consent_shop, "--absorb-seconds", "0", "--reload-seconds", "0", "--no-personalization")
    try:
        cold = recs(s, "never-seen-shopper")
        r = recs(s, "shopper-10")
        assert (r["source"], r["personalized"], r["items"]) == ("cold_start", False, cold["items"])
    finally:
        s.stop()


@pytest.fixture(scope="module")
def session_shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Three customers; anonymous browsing in S7, where u9 then logged in (curated: the link is
    in the warehouse), and in S8, linked to nobody yet."""
    base = tmp_path_factory.mktemp("sessions")
    data = plant_shop(base / "d")
    rows = (data / "events.csv").read_text().splitlines()
    rows = [rows[0] + ",session_id"] + [r + "," for r in rows[1:]]
    rows += [f",p{i},view,2024-03-03T10:0{i}:00,,S7" for i in (1, 2, 3)]
    rows += ["u9,p3,purchase,2024-03-03T10:05:00,30,S7"]
    rows += [f",p{i},view,2024-03-03T11:0{i}:00,,S8" for i in (4, 5, 6)]
    (data / "events.csv").write_text("\n".join(rows) + "\n")
    work = base / "w"
    sw("train", "--data", str(data), "--workdir", str(work), *FAST_TRAIN)
    yield work


def test_an_anonymous_session_is_not_personalized_once_its_customer_withdraws(session_shop):
    """Over HTTP, from the next request on: the link from the curated events (S7, u9) and from
    events the server accepted since, still in its spool (S8 and S9, where shoppers logged in)."""
    s = Server(session_shop, "--absorb-seconds", "0", "--reload-seconds", "0")
    try:
        cold = recs(s, "never-seen-shopper")
        assert recs(s, "~anonymous:S7")["personalized"] is True
        assert recs(s, "~anonymous:S8")["personalized"] is True

        assert s.client.put("/v1/users/u9/consent", json={"personalization": False}).status_code == 200
        got = recs(s, "~anonymous:S7")
        assert (got["source"], got["personalized"], got["items"]) == ("cold_start", False, cold["items"])
        assert recs(s, "~anonymous:S8")["personalized"] is True  # linked to nobody

        # shopper-2 logs in to S8; S9 browses, then shopper-3 logs in there: the spool only
        events = [
            {"user_id": "shopper-2", "session_id": "S8", "product_id": "p2", "event_type": "view"},
            {"session_id": "S9", "product_id": "p1", "event_type": "view"},
            {"session_id": "S9", "product_id": "p2", "event_type": "click"},
            {"user_id": "shopper-3", "session_id": "S9", "product_id": "p2", "event_type": "view"},
        ]
        r = s.client.post(
            "/v1/events", json=[{**e, "timestamp": f"2024-03-04T10:0{i}:00Z"} for i, e in enumerate(events)]
        )
        assert r.status_code == 202 and r.json()["accepted"] == 4, r.text
        assert recs(s, "~anonymous:S8")["personalized"] is True  # shopper-2 consents
        assert recs(s, "~anonymous:S9")["personalized"] is True  # its own events since
        for user in ("shopper-2", "shopper-3"):
            put = s.client.put(f"/v1/users/{user}/consent", json={"personalization": False})
            assert put.status_code == 200, put.text
        for session in ("S8", "S9"):
            got = recs(s, f"~anonymous:{session}")
            assert (got["source"], got["personalized"], got["items"]) == ("cold_start", False, cold["items"])
        # consent given back: the session is the customer's again, personalized at once
        assert s.client.put("/v1/users/u9/consent", json={"personalization": True}).status_code == 200
        assert recs(s, "~anonymous:S7")["personalized"] is True
    finally:
        s.stop()


def test_the_event_loops_lookups_leave_a_consent_look_to_the_queue(session_shop):
    """`recommend_cached` (the event loop's lookup) never reads a consent file: when the answer
    needs a look (S7's customer withdrew on this replica a moment ago) it hands the request to the
    recommendation queue (None), whose thread looks; the loop then answers from what is known."""
    from shelfwise.serving._consent import ConsentView
    from shelfwise.serving._service import Service

    svc = Service(session_shop, consent=ConsentView(session_shop, follow_interval_s=3600))
    svc.consent.set(svc.pseudonymize("u9"), {"personalization": False})  # this replica, in memory
    assert svc.recommend_cached("~anonymous:S7", 5) is None  # a look is due: not on the loop
    ans = svc.recommend("~anonymous:S7", 5)  # the queue's thread: looks, S7 is u9's
    assert ans.extra["personalized"] is False and ans.source.startswith("cold_start")
    again = svc.recommend_cached("~anonymous:S7", 5)
    assert again is not None and (again.items, again.extra["personalized"]) == (ans.items, False)


def test_a_body_that_is_not_json_is_a_400_and_json_that_fails_validation_a_422(tmp_path):
    """As `POST /v1/events` answers a body that does not parse (400), so does the consent PUT
    (it answered FastAPI's 422, the status of well-formed JSON that fails validation). The body
    is read before the bundle is needed: an app whose bundle has not loaded answers these."""
    from fastapi.testclient import TestClient

    from shelfwise.serving import create_app

    c = TestClient(create_app(tmp_path))  # (no lifespan: nothing loaded, the service a 503)
    url = "/v1/users/shopper-2/consent"
    as_json = {"content-type": "application/json"}
    for body, headers, says in [
        (b'{"personalization": fal', as_json, "body is not valid JSON: Expecting value at character"),
        (b"{personalization: false}", as_json, "body is not valid JSON"),
        (b"", as_json, "body is empty"),
        (b"personalization=false", {"content-type": "application/x-www-form-urlencoded"}, "body is not JSON"),
    ]:
        r = c.put(url, content=body, headers=headers)
        assert r.status_code == 400, (body, r.status_code, r.text)
        assert r.json()["error"].startswith(says) and '{"personalization": false}' in r.json()["error"], (
            r.text
        )
    for wrong, field in [
        ({"personalization": "no"}, "personalization"),
        ({"color": "red"}, "color"),
        ([1], ""),
    ]:
        r = c.put(url, json=wrong)
        assert r.status_code == 422 and field in r.json()["error"], (wrong, r.text)
    # a valid body gets past the body: the bundle is still loading (not a 400, not a 422)
    assert c.put(url, json={"personalization": False}).status_code == 503
