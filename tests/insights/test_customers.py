"""`shelfwise insights customers` end to end on a planted shop: a known churner, a loyal weekly
buyer and a browser who never bought; point in time (a purchase after --as-of changes nothing),
the shop's own ids out, erasure, permissions, audit and lineage."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

AS_OF = "2025-12-31"
START = datetime(2025, 1, 1)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    e.pop("SHELFWISE_AS", None)
    e.pop("SHELFWISE_API_KEY", None)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "shelfwise.cli", *args], capture_output=True, text=True, env=e, timeout=300
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def planted_shop(d: Path) -> None:
    """A year of orders: 40 regular buyers, 15 who lapse at random dates (the churn the model
    learns from), CHURNER (weekly until mid-August, then silent: and one purchase *after* the
    as-of date), LOYAL (weekly to the end) and BROWSER (views only)."""
    rng = np.random.default_rng(3)
    d.mkdir(parents=True)
    cats = ["Home > Kitchen", "Sports > Outdoor", "Beauty > Hair"]
    with open(d / "products.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["product_id", "title", "category", "brand", "price"])
        for i in range(30):
            w.writerow([f"P{i:03d}", f"Product {i}", cats[i % 3], f"Brand{i % 5}", 10 + 3 * i])
    rows: list[list[str]] = []

    def buy(user: str, day: float, product: int) -> None:
        ts = (START + timedelta(days=float(day))).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append([user, f"P{product:03d}", "view", ts, ""])
        rows.append([user, f"P{product:03d}", "purchase", ts, str(10 + 3 * product)])

    for u in range(40):
        gap, day = rng.uniform(10, 30), rng.uniform(0, 30)
        while day < 364:
            buy(f"R{u:02d}", day, int(rng.integers(0, 30)))
            day += rng.exponential(gap)
    for u in range(15):
        stop, day = rng.uniform(60, 300), rng.uniform(0, 20)
        while day < stop:
            buy(f"L{u:02d}", day, int(rng.integers(0, 30)))
            day += rng.exponential(8)
    for day in range(0, 227, 7):  # to 2025-08-15
        buy("CHURNER", day, 3)
    buy("CHURNER", 370, 3)  # 2026-01-06: after --as-of
    for day in range(3, 364, 7):
        buy("LOYAL", day, 4)
    for day in range(100, 360, 20):
        rows.append(
            ["BROWSER", "P005", "view", (START + timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ"), ""]
        )
    with open(d / "events.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "product_id", "event_type", "timestamp", "value"])
        w.writerows(rows)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("insights")
    planted_shop(base / "data")
    ok(run("ingest", "--data", str(base / "data"), "--workdir", str(base / "w")))
    return base / "w"


@pytest.fixture(scope="module")
def profiles(shop: Path) -> dict[str, dict]:
    out = shop.parent / "profiles.jsonl"
    proc = ok(run("insights", "customers", "--workdir", str(shop), "--as-of", AS_OF, "--out", str(out)))
    assert "customer profiles" in proc.stdout
    return {r["user_id"]: r for r in map(json.loads, out.read_text().splitlines())}


def test_known_churner_loyal_buyer_and_browser(profiles):
    churner, loyal, browser = profiles["CHURNER"], profiles["LOYAL"], profiles["BROWSER"]
    assert churner["churn_risk"] > 0.7 > 0.3 > loyal["churn_risk"]
    assert loyal["expected_purchases"] > 5 > 0.5 > churner["expected_purchases"]
    assert loyal["segment"] == "champions"
    assert churner["segment"] in ("at_risk", "cant_lose", "hibernating")
    assert browser["frequency"] == 0 and browser["segment"] == "prospect" and browser["recency_days"] is None
    assert loyal["top_categories"] == ["Sports > Outdoor"] and loyal["top_brands"] == ["Brand4"]
    assert loyal["price_level"] in ("budget", "mid", "premium")
    assert all(0.0 <= p["churn_risk"] <= 1.0 for p in profiles.values())
    # a count's P(at least one) is never above its expected number
    assert all(p["expected_purchases"] >= 1 - p["churn_risk"] - 1e-4 for p in profiles.values())


def test_point_in_time_nothing_after_as_of(shop, profiles):
    from tests.conftest import curated_rows

    churner = profiles["CHURNER"]
    # 33 weekly orders, the last on 2025-08-13; the order of 2026-01-06 is not seen
    assert churner["frequency"] == 33
    # in days from the shop's latest event up to the as-of date (what the default as-of is)
    ((latest,),) = curated_rows(
        shop, f"SELECT max(timestamp) FROM curated.events WHERE timestamp < DATE '{AS_OF}' + 1"
    )
    assert latest.date() < datetime(2025, 12, 31).date()
    assert churner["recency_days"] == pytest.approx(
        (latest - (START + timedelta(days=224))).total_seconds() / 86400, abs=0.01
    )
    assert churner["monetary"] == pytest.approx(33 * 19)


def test_shop_ids_out_csv_and_lineage(shop, profiles):
    assert set(profiles) >= {"CHURNER", "LOYAL", "BROWSER"} and not any(u.startswith("u_") for u in profiles)
    out = shop.parent / "profiles.csv"
    ok(
        run(
            "insights",
            "customers",
            "--workdir",
            str(shop),
            "--as-of",
            AS_OF,
            "--out",
            str(out),
            "--horizon-days",
            "30",
        )
    )
    rows = {r["user_id"]: r for r in csv.DictReader(out.open())}
    assert rows["LOYAL"]["top_categories"] == "Sports > Outdoor"
    assert float(rows["LOYAL"]["expected_purchases"]) < profiles["LOYAL"]["expected_purchases"]  # 30 d < 90 d
    runs = [json.loads(x) for x in (shop / "lineage" / "openlineage.jsonl").read_text().splitlines()]
    done = [
        r for r in runs if r["job"]["name"] == "shelfwise.insights.customers" and r["eventType"] == "COMPLETE"
    ]
    assert any(o["name"] == str(out.resolve()) for r in done for o in r["outputs"])
    audit = [json.loads(x) for x in (shop / "audit" / "audit.jsonl").read_text().splitlines()]
    assert any(a["action"] == "insights.customers" and a["details"]["out"] == str(out) for a in audit)


def test_bad_output_and_as_of_are_clear_errors(shop, tmp_path):
    proc = run("insights", "customers", "--workdir", str(shop), "--out", str(tmp_path / "p.txt"))
    assert proc.returncode == 2 and "use .jsonl or .csv" in proc.stderr
    proc = run(
        "insights",
        "customers",
        "--workdir",
        str(shop),
        "--as-of",
        "yesterday",
        "--out",
        str(tmp_path / "p.jsonl"),
    )
    assert proc.returncode == 2 and "--as-of 'yesterday'" in proc.stderr


@pytest.mark.slow
def test_erased_user_leaves_profiles_and_roles_are_checked(shop, tmp_path):
    work = tmp_path / "w"
    shutil.copytree(shop, work)
    ok(run("privacy", "erase", "--workdir", str(work), "--user", "CHURNER"))
    keys = {}
    for name, role in [("ada", "admin"), ("ann", "analyst"), ("svc", "service")]:
        env = {"SHELFWISE_AS": "ada", "SHELFWISE_API_KEY": keys["ada"]} if keys else {}
        out = ok(
            run("users", "add", "--workdir", str(work), "--name", name, "--role", role, "--json", env=env)
        )
        keys[name] = json.loads(out.stdout)["api_key"]
    out = tmp_path / "p.jsonl"
    denied = run("insights", "customers", "--workdir", str(work), "--out", str(out),
                 env={"SHELFWISE_AS": "svc", "SHELFWISE_API_KEY": keys["svc"]})  # fmt: skip
    assert denied.returncode == 4 and "may not insights.customers" in denied.stderr and not out.exists()
    ok(run("insights", "customers", "--workdir", str(work), "--as-of", AS_OF, "--out", str(out),
           env={"SHELFWISE_AS": "ann", "SHELFWISE_API_KEY": keys["ann"]}))  # fmt: skip
    users = {json.loads(x)["user_id"] for x in out.read_text().splitlines()}
    assert "CHURNER" not in users and {"LOYAL", "BROWSER"} <= users


def test_the_last_days_date_as_of_dates_recency_as_its_default_does(shop, tmp_path):
    """`--as-of` the date of the latest event reads what the default (the latest event's time)
    reads: a same-day buyer is 0 days ago, not 1 (every recency was a day more with the date)."""
    by_default, dated = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    ok(run("insights", "customers", "--workdir", str(shop), "--out", str(by_default)))
    last = (START + timedelta(days=370)).strftime("%Y-%m-%d")
    ok(run("insights", "customers", "--workdir", str(shop), "--as-of", last, "--out", str(dated)))
    a, b = (
        {r["user_id"]: r["recency_days"] for r in map(json.loads, p.read_text().splitlines())}
        for p in (by_default, dated)
    )
    assert a == b and a["CHURNER"] == 0


def test_a_user_left_out_does_not_date_everyone_elses_recency(shop, tmp_path):
    """Without --as-of the figures are as of the latest event they may read: CHURNER's purchase
    of 2026-01-06 (after everyone else's last) stops setting the date once CHURNER withdraws
    personalization consent (their events are in no figure)."""
    import shutil

    from shelfwise.insights._data import load_curated

    work = tmp_path / "w"
    shutil.copytree(shop, work)
    _, _, before = load_curated(work, None, consent="personalization")
    assert before.date() == (START + timedelta(days=370)).date()
    ok(run("privacy", "consent", "--workdir", str(work), "--user", "CHURNER", "--personalization", "no"))
    events, _, after = load_curated(work, None, consent="personalization")
    assert after < before and after == events["timestamp"].max()
    assert after.date() <= (START + timedelta(days=364)).date()
    _, _, everyone = load_curated(work, None)  # shop-level figures (demand) read every event
    assert everyone == before


def test_profile_over_http_says_why_there_is_none(shop, tmp_path):
    """`GET /v1/users/{id}/profile` answers 404 for every user without a profile, with the real
    reason: a withdrawal of personalization consent (or an opt-in shop without it) is not a user
    "with no events in the warehouse"."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shelfwise import Shop
    from shelfwise.insights._http import insights_router

    work = tmp_path / "w"
    shutil.copytree(shop, work)
    Shop(work).set_consent("R00", personalization=False)  # before the fit: no refit in the background
    app = FastAPI()
    app.include_router(insights_router(work))
    with TestClient(app) as c:
        r = c.get("/v1/users/R00/profile")
        assert r.status_code == 404, r.text
        assert "withdrew personalization consent" in r.text and "no events" not in r.text
        assert c.get("/v1/users/LOYAL/profile").status_code == 200
        r = c.get("/v1/users/nobody-at-all/profile")
        assert r.status_code == 404 and "unknown user 'nobody-at-all': no events of theirs" in r.text
        (work / "config").mkdir(exist_ok=True)
        (work / "config" / "privacy.json").write_text(
            json.dumps({"default_consent": {"personalization": False, "marketing": False}})
        )
        r = c.get("/v1/users/LOYAL/profile")
        assert r.status_code == 404 and "opt-in" in r.text and "no events" not in r.text


def test_profiles_follow_the_shop_id_rule_of_audience_exports_and_state_marketing_consent(shop, tmp_path):
    """A scientist may not have shop ids (`audiences.shop_ids`): their profile file names users by
    pseudonyms, as `audiences export` does, and says so; an analyst gets shop ids. The file is
    not a contact list: each row says whether the user may receive marketing, the opt-outs are
    counted, and what was left out is named by what it counts."""
    from shelfwise import Shop

    work = tmp_path / "w"
    shutil.copytree(shop, work)
    Shop(work).set_consent("R00", marketing=False)  # still profiled: personalization kept
    Shop(work).set_consent("R01", personalization=False)  # not profiled at all
    keys = {"root": Shop(work).add_person("root", "admin")}
    for name, role in (("sci", "scientist"), ("ann", "analyst")):
        keys[name] = Shop(work, as_="root", api_key=keys["root"]).add_person(name, role)

    sci = Shop(work, as_="sci", api_key=keys["sci"]).customers(tmp_path / "s.csv", as_of=AS_OF)
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    ids = {r["user_id"] for r in rows}
    assert not ids & {"LOYAL", "CHURNER", "BROWSER", "R00"} and all(i.startswith("u_") for i in ids)
    assert sci["ids"] == "pseudonym" and sci["pseudonymized"] == len(rows) == sci["users"]

    ann = Shop(work, as_="ann", api_key=keys["ann"]).customers(tmp_path / "a.jsonl", as_of=AS_OF)
    recs = {r["user_id"]: r for r in map(json.loads, (tmp_path / "a.jsonl").read_text().splitlines())}
    assert ann["ids"] == "shop" and ann["pseudonymized"] == 0 and {"LOYAL", "R00"} <= set(recs)
    assert recs["R00"]["marketing_consent"] is False and recs["LOYAL"]["marketing_consent"] is True
    assert "R01" not in recs
    assert ann["marketing_opt_outs"] == 1 and ann["contact_list"] is False
    assert "not a marketing contact list" in ann["note"]
    assert ann["left_out_without_consent"] == 1 and ann["left_out_without_shop_id"] == 0
    assert ann["left_out"] == 0  # kept: the same count as left_out_without_shop_id
    assert "marketing_consent" in rows[0] and {r["marketing_consent"] for r in rows} == {"True", "False"}
    audit = [json.loads(x) for x in (work / "audit" / "audit.jsonl").read_text().splitlines()]
    done = [(a["actor"], a["details"]["ids"]) for a in audit if a["action"] == "insights.customers"]
    assert done[-2:] == [("sci", "pseudonym"), ("ann", "shop")]


def test_an_as_of_far_past_the_last_event_is_warned(shop, tmp_path):
    """Profiles as of a date 180 days past the data count the silence as days without orders:
    the result and the command say so."""
    from shelfwise import Shop
    from shelfwise.insights._data import StaleAsOfWarning

    with pytest.warns(StaleAsOfWarning, match="days after the last event"):
        rep = Shop(shop).customers(tmp_path / "p.jsonl", as_of="2026-07-05")
    assert "no data was recorded" in rep["warning"]
    assert Shop(shop).customers(tmp_path / "q.jsonl", as_of=AS_OF)["warning"] is None
    proc = ok(
        run(
            "insights",
            "customers",
            "-w",
            str(shop),
            "--as-of",
            "2026-07-05",
            "--out",
            str(tmp_path / "r.csv"),
        )
    )
    assert "days after the last event" in proc.stderr


def test_a_shop_of_ratings_only_is_told_profiles_need_orders(tmp_path):
    """MovieLens's ratings made all 943 users "prospects" certain to churn, expected orders 0,
    and no warning: without a purchase the profiles are refused, saying what the events hold."""
    data = tmp_path / "d"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title\np1,Toy Story\np2,Heat\n")
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,value\n"
        "u1,p1,rating,2024-01-05T10:00:00Z,5\nu2,p2,rating,2024-01-06T10:00:00Z,3\nu1,p2,view,2024-01-07T10:00:00Z,\n"
    )
    ok(run("ingest", "--data", str(data), "--workdir", str(tmp_path / "w")))
    proc = run("insights", "customers", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "p.jsonl"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        "no purchase up to 2024-01-07" in proc.stderr and "the events hold rating, view only" in proc.stderr
    )
    # every path that profiles the shop says the same (the served profile was still fitted,
    # "prospect" certain to churn, while the access document said "not computable")
    from shelfwise import Shop
    from shelfwise.errors import ShelfwiseError

    shop = Shop(tmp_path / "w")
    with pytest.raises(ShelfwiseError, match="no purchase up to 2024-01-07"):
        shop.profile("u1")
    with pytest.raises(ShelfwiseError, match="no purchase up to 2024-01-07"):
        shop.customers_report()
    doc = json.loads(Path(shop.access_export("u1", tmp_path / "a.json")["out"]).read_text())
    assert doc["parts"]["profile"]["rows"] == [] and "no purchase" in doc["parts"]["profile"]["note"]
