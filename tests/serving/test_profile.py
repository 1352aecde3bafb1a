"""`GET /v1/users/{id}/profile` over real HTTP on the served demo shop: 503 while the profiles of
the current data are fitted, then the same profile `insights customers` writes, 404 (the one
error shape) for an unknown user, gone after erasure; who may call it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from shelfwise.insights._profiles import WAIT_S
from tests.cli.test_cli import sw
from tests.serving.conftest import Server, known_users


def profile_when_ready(server: Server, user: str, headers: dict[str, str] | None = None, fits: int = 3):
    """The profile once the fit of the current data is done. The server holds a request that
    finds no profiles until the fit ends (`ProfileStore.get`), so the request itself waits on
    the fit, with no read timeout of the client's to cut it short on a loaded machine (the
    client's 30 s used to); a 503 then means the fit outlasted the server's own wait
    (`_profiles.WAIT_S`; the client's own limit is that wait plus two minutes, so a server that
    stops answering fails the test instead of hanging the suite) and the profile is asked for
    again, `fits` times at most. A failed fit is answered at once (409)."""
    for _ in range(fits):
        r = server.client.get(f"/v1/users/{user}/profile", headers=headers or {}, timeout=WAIT_S + 120)
        if r.status_code != 503:  # (a failed fit is a 409, at once)
            return r
        assert r.headers["retry-after"] == "10" and "being fitted" in r.json()["error"]
    return r


@pytest.fixture(scope="module")
def shop(served_workdir, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A copy of the served shop (this module erases a user)."""
    data, work = served_workdir
    copy = tmp_path_factory.mktemp("profile") / "w"
    shutil.copytree(work, copy)
    return data, copy


@pytest.mark.slow
def test_profile_over_http_matches_insights_customers_then_erasure(shop):
    data, work = shop
    users = known_users(data, work, 3)
    out = work.parent / "profiles.jsonl"
    sw("insights", "customers", "--workdir", str(work), "--out", str(out))
    batch = {r["user_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    s = Server(work, "--absorb-seconds", "0", "--reload-seconds", "0.5")
    try:
        r = profile_when_ready(s, users[0])
        assert r.status_code == 200, r.text
        got = r.json()
        want = batch[users[0]]
        assert (
            got["user_id"] == users[0]
            and got["horizon_days"] == 90
            and got["data_version"].startswith("events-v")
        )
        for f in ("frequency", "segment", "top_categories", "top_brands", "price_level"):
            assert got[f] == want[f], f
        for f in ("recency_days", "monetary", "expected_purchases", "churn_risk", "expected_value"):
            assert got[f] == pytest.approx(want[f], abs=1e-9), f
        # stored once per data version, keyed by pseudonym (never the shop's id)
        (stored,) = (work / "insights" / "profiles").glob("*.jsonl")
        assert users[0] not in stored.read_text()
        r = s.client.get("/v1/users/nobody-at-all/profile")
        assert r.status_code == 404 and set(r.json()) == {"error"} and "unknown user" in r.json()["error"]
        sw("privacy", "erase", "--workdir", str(work), "--user", users[1])
        assert s.client.get(f"/v1/users/{users[1]}/profile").status_code in (404, 503)
        r = profile_when_ready(s, users[1])
        assert r.status_code == 404, r.text
        assert profile_when_ready(s, users[2]).status_code == 200
        # a withdrawal of personalization consent hides the profile from the next request on
        sw("privacy", "consent", "--workdir", str(work), "--user", users[2], "--personalization", "no")
        r = s.client.get(f"/v1/users/{users[2]}/profile")
        assert r.status_code == 404, r.text
    finally:
        s.stop()


@pytest.mark.slow
def test_who_may_read_a_profile(shop):
    """Services (the shop's CRM) and people who work with customers' data; not an engineer."""
    data, work = shop
    from shelfwise.governance import People

    people = People(work)
    root = people.add("root", "admin")
    keys = {role: people.add(f"p-{role}", role, people.load()["root"]) for role in ("service", "engineer")}
    user = known_users(data, work, 5)[-1]
    s = Server(
        work,
        "--absorb-seconds",
        "0",
        "--reload-seconds",
        "0",
        env={"SHELFWISE_AS": "root", "SHELFWISE_API_KEY": root},
    )
    try:
        assert s.client.get(f"/v1/users/{user}/profile").status_code == 401
        r = s.client.get(f"/v1/users/{user}/profile", headers={"X-API-Key": keys["engineer"]})
        assert r.status_code == 403 and "may not insights.profile" in r.json()["error"]
        # the refusals are audited with the route, never the shop's own user id from the path
        audit = (work / "audit" / "audit.jsonl").read_text()
        assert '"/v1/users/{user_id}/profile"' in audit and user not in audit
        r = profile_when_ready(s, user, {"X-API-Key": keys["service"]})
        assert r.status_code == 200 and r.json()["user_id"] == user
    finally:
        s.stop()


def test_a_fit_that_failed_on_the_data_is_a_409_not_a_retry(tmp_path, monkeypatch):
    """Profiles that cannot be fitted on the shop's data (ratings only: no purchase) were a 503
    "retry shortly" with Retry-After: clients retried for ever. It is a 409 saying why, until
    new data comes; a fit still running stays a 503 with Retry-After."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shelfwise.insights import _profiles
    from shelfwise.insights._http import insights_router

    class Failed:
        error, fitting = "ShelfwiseError: no purchase up to 1998-04-22", False

        def __init__(self, workdir):
            pass

        def get(self, pseudonym):
            return False, None

    class Fitting(Failed):
        error, fitting = None, True

    (tmp_path / "governance").mkdir()
    for store, status in ((Failed, 409), (Fitting, 503)):
        monkeypatch.setattr(_profiles, "ProfileStore", store)
        app = FastAPI()
        app.include_router(insights_router(tmp_path))
        r = TestClient(app).get("/v1/users/u1/profile")
        assert r.status_code == status, r.text
        if status == 409:
            assert "cannot be fitted on the current data (ShelfwiseError: no purchase" in r.json()["detail"]
            assert "retry-after" not in r.headers
        else:
            assert r.headers["retry-after"] == "10"


def test_a_fit_that_met_a_writers_lock_is_no_failure(tmp_path, monkeypatch):
    """The server's own absorb holds the warehouse for seconds: a fit that met its lock is tried
    again at the next call, not kept as failed (the route's 409 is for the data's faults)."""
    import duckdb

    from shelfwise.insights import _profiles

    store = _profiles.ProfileStore(tmp_path)

    def busy(workdir, key):
        raise duckdb.IOException('Could not set lock on file "warehouse.duckdb": Conflicting lock is held')

    monkeypatch.setattr(_profiles, "write_profiles", busy)
    store._fit("k1")
    assert store.error is None and store._failed is None

    def broken(workdir, key):
        raise ValueError("no purchase up to 1998-04-22")

    monkeypatch.setattr(_profiles, "write_profiles", broken)
    store._fit("k1")
    assert store._failed == "k1" and "no purchase" in (store.error or "")
