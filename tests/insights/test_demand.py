"""`shelfwise insights demand` and `insights replenishment` (issue 18.3): a planted seasonal series
(period 4) forecast in phase, a product with stock-outs whose demand is not read as zero, point in
time (a spike after --as-of changes nothing), the products contract's stock / lead_time_days with
bad values quarantined, permissions, audit and lineage, and the reorder arithmetic on a planted
case."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

START = datetime(2024, 1, 1)  # a Monday
WEEKS = 72
AS_OF = (START + timedelta(weeks=WEEKS) - timedelta(days=1)).date().isoformat()  # a Sunday
PATTERN = np.array([15.0, 30.0, 60.0, 30.0])  # SEAS's weekly units, period 4
OUT_MID = range(40, 44)  # OOS sold nothing these weeks although shoppers kept looking
OUT_END = 3  # ... and the last 3 weeks before as-of: the catalog lists it with stock 0 now


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    e.pop("SHELFWISE_AS", None)
    e.pop("SHELFWISE_API_KEY", None)
    e.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "shelfwise.cli", *args], capture_output=True, text=True, env=e, timeout=600
    )


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def planted_shop(d: Path) -> None:
    """72 weeks of a small shop. SEAS: period-4 demand; STEADY: ~10 a week, well stocked; OOS:
    ~10 a week with two stock-outs (views go on, sales stop); after as-of SEAS sells 5,000 units
    in a week (must not be seen). BADSTOCK/BADLEAD carry invalid stock / lead time values."""
    rng = np.random.default_rng(11)
    d.mkdir(parents=True)
    with open(d / "products.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["product_id", "title", "category", "price", "in_stock", "stock_qty", "lead_time"])
        w.writerow(["SEAS", "Seasonal thing", "Home > Kitchen", 5, "true", 40, 14])
        w.writerow(["STEADY", "Steady thing", "Home > Kitchen", 5, "true", 500, 7])
        w.writerow(["OOS", "Often sold out", "Sports > Outdoor", 5, "false", 0, 14])
        w.writerow(["NOLEAD", "No lead time", "Sports > Outdoor", 5, "true", 3, ""])
        w.writerow(["BADSTOCK", "Half a unit", "Sports > Outdoor", 5, "true", "2.5", 7])
        w.writerow(["BADLEAD", "Negative lead", "Sports > Outdoor", 5, "true", 4, "-3"])
    rows: list[list[object]] = []

    def week(product: str, k: int, units: int, views: int) -> None:
        for v in range(views):
            ts = START + timedelta(weeks=k, hours=int(rng.integers(1, 160)), minutes=v)
            rows.append([f"U{rng.integers(0, 300)}", product, "view", ts.strftime("%Y-%m-%dT%H:%M:%SZ"), ""])
        if units:
            ts = START + timedelta(weeks=k, days=2, hours=int(rng.integers(0, 23)))
            rows.append(
                [f"U{rng.integers(0, 300)}", product, "purchase", ts.strftime("%Y-%m-%dT%H:%M:%SZ"), units]
            )

    for k in range(WEEKS):
        seas = int(rng.poisson(PATTERN[k % 4]))
        week("SEAS", k, seas, seas // 2 + 1)
        week("STEADY", k, int(rng.poisson(10)), 20)
        out = k in OUT_MID or k >= WEEKS - OUT_END
        week("OOS", k, 0 if out else int(rng.poisson(10)), int(rng.poisson(20)))
        week("NOLEAD", k, int(rng.poisson(2)), 4)
    week("SEAS", WEEKS, 5000, 10)  # after --as-of
    with open(d / "events.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "product_id", "event_type", "timestamp", "quantity"])
        w.writerows(rows)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("demand")
    planted_shop(base / "data")
    ok(run("ingest", "--data", str(base / "data"), "--workdir", str(base / "w")))
    # the catalog as delivered when the shop started: stock figures are read point in time from
    # the products version current at --as-of, and this one was ingested today
    backdate(base / "w", {1: START})
    return base / "w"


def backdate(workdir: Path, when: dict[int, datetime]) -> None:
    """Set when products versions were ingested (a shop whose catalog deliveries go back)."""
    import duckdb

    with duckdb.connect(str(workdir / "warehouse.duckdb")) as con:
        for version, at in when.items():
            con.execute(
                "UPDATE meta.table_versions SET created_at = ? WHERE table_name = 'products' AND version = ?",
                [at, version],
            )


def with_catalog_deliveries(shop: Path, tmp_path: Path, rows: list[str]) -> Path:
    """A copy of `shop` to which each of `rows` (a line of the planted products file) was
    delivered in turn, each its own products version (`ingest --append`)."""
    import shutil

    work = tmp_path / "w"
    shutil.copytree(shop, work)
    for n, row in enumerate(rows):
        d = tmp_path / f"catalog{n}"
        d.mkdir()
        (d / "products.csv").write_text(
            f"product_id,title,category,price,in_stock,stock_qty,lead_time\n{row}\n"
        )
        ok(run("ingest", "--append", "--data", str(d), "--workdir", str(work)))
    return work


@pytest.fixture(scope="module")
def forecasts(shop: Path) -> tuple[dict[str, list[dict]], str]:
    out = shop.parent / "demand.jsonl"
    proc = ok(run("insights", "demand", "--workdir", str(shop), "--as-of", AS_OF, "--out", str(out)))
    by: dict[str, list[dict]] = {}
    for r in map(json.loads, out.read_text().splitlines()):
        by.setdefault(r["product_id"], []).append(r)
    return by, proc.stdout


# -- the contract ------------------------------------------------------------------------------
def test_stock_and_lead_time_are_curated_and_bad_values_quarantined(shop):
    from shelfwise.storage import read_only

    with read_only(shop) as (con, _):
        got = dict(con.sql("SELECT product_id, stock FROM curated.products").fetchall())
        lead = dict(con.sql("SELECT product_id, lead_time_days FROM curated.products").fetchall())
        bad = con.sql(
            "SELECT reason, detail FROM quarantine.rows WHERE table_name = 'products' ORDER BY detail"
        ).fetchall()
    assert got["SEAS"] == 40 and got["OOS"] == 0 and lead["SEAS"] == 14 and lead["NOLEAD"] is None
    assert "BADSTOCK" not in got and "BADLEAD" not in got
    assert [r[0] for r in bad] == ["out_of_range", "invalid_type"], bad
    assert "lead_time_days: below 0: -3" in bad[0][1] and "stock: not a whole number: 2.5" in bad[1][1]


def test_row_check_agrees_on_stock():
    from shelfwise.governance._contracts import PRODUCTS
    from shelfwise.governance._row_check import check_record

    base = {"product_id": "P1", "title": "A thing"}
    assert not check_record(PRODUCTS, {**base, "stock": "7", "lead_time_days": "2.5"}).failures
    f = check_record(PRODUCTS, {**base, "stock": "7.5"}).failures
    assert [x.reason.value for x in f] == ["invalid_type"] and "whole number" in f[0].detail


def test_quantity_is_a_whole_number_of_units_and_one_where_missing(tmp_path):
    """Events contract 1.3.0 (issue 18: quantity is an integer >= 1, default 1): 2.5 units are
    quarantined with their reason, on ingest and in the served events' row check; a purchase
    without a quantity is curated and counts one unit. 1.4.0: a purchase line of 0 units is a
    no_sale row (curated, not a purchase), a view of 0 units still out of range."""
    from shelfwise.governance._contracts import EVENTS
    from shelfwise.governance._row_check import check_record
    from shelfwise.storage import read_only

    base = {
        "user_id": "u1",
        "product_id": "P1",
        "event_type": "purchase",
        "timestamp": "2024-03-05T10:00:00Z",
    }
    assert not check_record(EVENTS, {**base, "quantity": "3"}).failures
    f = check_record(EVENTS, {**base, "quantity": "2.5"}).failures
    assert [x.reason.value for x in f] == ["invalid_type"] and "quantity: not a whole number: 2.5" in f[
        0
    ].detail
    d = tmp_path / "data"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title,price\nP1,A thing,5\n")
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,quantity\n"
        "u1,P1,purchase,2024-03-05T10:00:00Z,3\n"
        "u2,P1,purchase,2024-03-05T11:00:00Z,2.5\n"
        "u3,P1,purchase,2024-03-05T12:00:00Z,0\n"
        "u4,P1,purchase,2024-03-05T13:00:00Z,\n"
        "u5,P1,view,2024-03-05T14:00:00Z,0\n"
    )
    said = ok(run("ingest", "--data", str(d), "--workdir", str(tmp_path / "w"))).stdout
    assert "of the curated: 1 no-sale row(s)" in said, said
    with read_only(tmp_path / "w") as (con, _):
        got = con.sql(
            "SELECT coalesce(quantity, 1) FROM curated.events WHERE event_type = 'purchase' ORDER BY 1"
        ).fetchall()
        bad = con.sql(
            "SELECT reason, detail FROM quarantine.rows WHERE table_name = 'events' ORDER BY reason"
        ).fetchall()
    assert got == [(1.0,), (3.0,)]
    assert [r[0] for r in bad] == ["invalid_type", "out_of_range"], bad
    assert "quantity: not a whole number: 2.5" in bad[0][1] and "quantity: below 1: 0" in bad[1][1]


# -- forecasts, end to end ---------------------------------------------------------------------
@pytest.mark.slow  # a statsforecast run through the CLI (~30-60 s on a loaded machine)
def test_seasonal_series_forecast_in_phase(forecasts):
    by, stdout = forecasts
    seas = by["SEAS"]
    assert len(seas) == 13 and "season 4 weeks" in stdout
    assert "80% intervals (smooth, season 4" in stdout and "held-out weeks inside before" in stdout
    first = date.fromisoformat(seas[0]["week_start"])
    assert first == (START + timedelta(weeks=WEEKS)).date() and first.weekday() == 0
    expected = [PATTERN[(WEEKS + k) % 4] for k in range(8)]
    got = [r["units"] for r in seas[:8]]
    assert np.allclose(got, expected, rtol=0.3), (got, expected)
    # point in time: the 5,000 units sold after --as-of are not seen
    assert max(r["hi"] for r in seas) < 120
    assert all(r["lo"] <= r["units"] <= r["hi"] for rs in by.values() for r in rs)


@pytest.mark.slow  # a statsforecast run through the CLI (~30-60 s on a loaded machine)
def test_stock_outs_are_not_read_as_zero_demand(forecasts):
    by, stdout = forecasts
    oos = [r["units"] for r in by["OOS"]]
    # the last 3 weeks sold nothing (out of stock): demand is still ~10 a week
    assert 7.5 < float(np.mean(oos)) < 12.5, oos
    censored = int(stdout.split(" stock-out weeks")[0].rsplit(" ", 1)[1])
    assert len(OUT_MID) + OUT_END <= censored <= len(OUT_MID) + OUT_END + 2


@pytest.mark.slow  # a statsforecast run through the CLI (~30-60 s on a loaded machine)
def test_replenishment_end_to_end(shop, forecasts):
    out = shop.parent / "reorder.csv"
    proc = ok(
        run("insights", "replenishment", "--workdir", str(shop), "--as-of", AS_OF, "--out", str(out),
            "--service-level", "0.9")
    )  # fmt: skip
    assert "reorder suggestions" in proc.stdout
    rows = {r["product_id"]: r for r in csv.DictReader(out.open())}
    assert rows["STEADY"]["order_qty"] == "0" and "no order" in rows["STEADY"]["reason"]
    oos = rows["OOS"]
    assert int(oos["order_qty"]) >= 30 and oos["stock"] == "0" and "order" in oos["reason"]
    assert float(oos["demand_lead_time"]) > 25  # 3 weeks of ~10
    assert rows["NOLEAD"]["order_qty"] == "" and "lead_time_days" in rows["NOLEAD"]["reason"]
    audit = [json.loads(x) for x in (shop / "audit" / "audit.jsonl").read_text().splitlines()]
    assert {"insights.demand", "insights.replenishment"} <= {a["action"] for a in audit}
    # the stock figures came from the products version current at as-of (the fixture's, backdated)
    assert [a for a in audit if a["action"] == "insights.replenishment"][-1]["details"][
        "catalog_version"
    ] == 1
    assert "stock figures: products version 1" in proc.stdout
    runs = [json.loads(x) for x in (shop / "lineage" / "openlineage.jsonl").read_text().splitlines()]
    done = [
        r
        for r in runs
        if r["job"]["name"] == "shelfwise.insights.replenishment" and r["eventType"] == "COMPLETE"
    ]
    assert any(o["name"] == str(out.resolve()) for r in done for o in r["outputs"])


@pytest.mark.slow
def test_category_level_csv(shop, tmp_path):
    out = tmp_path / "cat.csv"
    said = ok(run("insights", "demand", "--workdir", str(shop), "--as-of", AS_OF, "--level", "category",
           "--horizon-weeks", "4", "--out", str(out))).stdout  # fmt: skip
    rows = list(csv.DictReader(out.open()))
    assert {r["category"] for r in rows} == {"Home > Kitchen", "Sports > Outdoor"} and len(rows) == 8
    # the category forecast is its own series' model, and says it is not the sum of its products'
    assert "its forecast is not the sum of its products' forecasts" in said, said


@pytest.mark.slow  # four CLI processes (~50 s on a loaded machine)
def test_permissions_are_checked_and_denials_audited(shop, tmp_path):
    import shutil

    work = tmp_path / "w"
    shutil.copytree(shop, work)
    keys = {}
    for name, role in [("ada", "admin"), ("svc", "service")]:
        env = {"SHELFWISE_AS": "ada", "SHELFWISE_API_KEY": keys["ada"]} if keys else {}
        out = ok(
            run("users", "add", "--workdir", str(work), "--name", name, "--role", role, "--json", env=env)
        )
        keys[name] = json.loads(out.stdout)["api_key"]
    svc = {"SHELFWISE_AS": "svc", "SHELFWISE_API_KEY": keys["svc"]}
    for cmd, action in (("demand", "insights.demand"), ("replenishment", "insights.replenishment")):
        out = tmp_path / f"{cmd}.jsonl"
        denied = run("insights", cmd, "--workdir", str(work), "--out", str(out), env=svc)
        assert denied.returncode == 4 and f"may not {action}" in denied.stderr and not out.exists()
    audit = [json.loads(x) for x in (work / "audit" / "audit.jsonl").read_text().splitlines()]
    assert sum(a["action"] == "access.denied" for a in audit) >= 2


# -- the model, in process ---------------------------------------------------------------------
def test_uncensor_flags_stock_out_weeks_and_estimates_from_views():
    from shelfwise.insights._demand import uncensor

    ds = pd.date_range("2024-01-01", periods=30, freq="7D")
    y = np.full(30, 10.0)
    y[[12, 13, 14]] = 0.0
    interest = np.full(30, 20.0)
    g = pd.DataFrame({"unique_id": "A", "ds": ds, "y": y, "interest": interest})
    fixed, n = uncensor(g, set())
    assert n == 3 and fixed["censored"].sum() == 3
    assert np.allclose(fixed["y"], 10.0)  # 20 views x 0.5 units per view
    # no views in those weeks: the product was not even looked at, so no stock-out is assumed
    g.loc[[12, 13, 14], "interest"] = 0.0
    assert uncensor(g, set())[1] == 0
    # ... unless the catalog says it is out of stock now and the zero weeks are the last ones
    g2 = g.assign(
        y=np.r_[y[:27], 0.0, 0.0, 0.0], interest=np.r_[g["interest"].to_numpy()[:27], 0.0, 0.0, 0.0]
    )
    fixed, n = uncensor(g2, {"A"})
    assert n == 3 and np.allclose(fixed["y"].tail(3), 10.0)


def test_one_sale_before_a_long_stock_out_is_no_level_to_fill_it_with():
    """A product that sold 1 unit in its first week and has been out of stock since, looked at
    in one later week: each stock-out week nobody looked at was filled with its "level", that one
    sale, so 1 unit ever read as 6.7 and a top seller. The week that drew interest is estimated
    from it; the others stay unfilled (flagged censored all the same). With enough uncensored
    weeks the level fills them as before."""
    from shelfwise.insights._demand import MIN_LEVEL_WEEKS, uncensor

    ds = pd.date_range("2024-08-05", periods=7, freq="7D")
    g = pd.DataFrame(
        {"unique_id": "P", "ds": ds, "y": [1.0, 0, 0, 0, 0, 0, 0], "interest": [2.0, 0, 0, 2.0, 0, 0, 0]}
    )
    fixed, n = uncensor(g, {"P": None})
    assert n == 6 and fixed["censored"].sum() == 6
    assert list(fixed["y"]) == [1.0, 0.0, 0.0, pytest.approx(1.0), 0.0, 0.0, 0.0]  # 2 views x 1/2
    assert fixed["y"].sum() == pytest.approx(2.0)
    # MIN_LEVEL_WEEKS weeks of one sale each, then the stock-out: its level fills the weeks
    y = [1.0] * MIN_LEVEL_WEEKS + [0.0] * 3
    g2 = pd.DataFrame({"unique_id": "Q", "ds": pd.date_range("2024-08-05", periods=len(y), freq="7D"),
                       "y": y, "interest": [2.0] * MIN_LEVEL_WEEKS + [0.0] * 3})  # fmt: skip
    fixed, n = uncensor(g2, {"Q": None})
    assert n == 3 and np.allclose(fixed["y"].tail(3), 1.0)


def test_stock_out_weeks_are_counted_at_the_level_forecast():
    """Two products of one category out of stock in the same 3 weeks: 6 product weeks, but 3
    weeks of the one category series forecast at `--level category`."""
    from shelfwise.insights._demand import forecast_demand

    ds = pd.date_range("2024-01-01", periods=30, freq="7D")
    weekly = pd.DataFrame(
        [
            {"product_id": p, "ds": d, "units": 0.0 if k in (12, 13, 14) else 10.0, "interest": 20.0}
            for p in ("A", "B")
            for k, d in enumerate(ds)
        ]
    )
    products = pd.DataFrame(
        {"product_id": ["A", "B"], "category": ["C", "C"], "in_stock": [True, True], "stock": [5, 5]}
    )
    as_of = ds[-1] + pd.Timedelta(days=6)  # the Sunday ending the last week
    _, by_product, _ = forecast_demand(weekly, products, as_of, horizon_weeks=2)
    _, by_category, history = forecast_demand(weekly, products, as_of, horizon_weeks=2, level="category")
    assert (by_product.series, by_product.censored_weeks) == (2, 6)
    assert (by_category.series, by_category.censored_weeks) == (1, 3)
    assert sorted(history.loc[history["censored"], "ds"]) == list(ds[12:15])


def test_last_complete_week_is_point_in_time():
    from shelfwise.insights._data import parse_as_of
    from shelfwise.insights._demand import last_complete_week

    assert last_complete_week(parse_as_of("2024-03-10")) == pd.Timestamp("2024-03-04")  # a Sunday
    assert last_complete_week(parse_as_of("2024-03-13")) == pd.Timestamp("2024-03-04")  # a Wednesday
    assert last_complete_week(parse_as_of("2024-03-11T00:00:00")) == pd.Timestamp("2024-03-04")


def test_replenishment_arithmetic_on_a_planted_case():
    from shelfwise.insights._replenishment import Z80, replenish

    weeks = pd.date_range("2025-01-06", periods=8, freq="7D")
    fc = pd.DataFrame(
        {"unique_id": "A", "ds": weeks, "units": 10.0, "lo": 10.0 - 2 * Z80, "hi": 10.0 + 2 * Z80}
    )  # 10 a week, sd 2 a week
    products = pd.DataFrame({"product_id": ["A", "B"], "stock": [20.0, 7.0], "lead_time_days": [14.0, 3.0]})
    got = {r["product_id"]: r for r in replenish(fc, products, service_level=0.95, review_days=7)}
    a = got["A"]
    # protection period 14 + 7 = 21 days = 3 weeks: demand 30, sd sqrt(3 x 4), z(0.95) = 1.6449
    assert a["demand_lead_time"] == pytest.approx(30.0)
    assert a["demand_sd"] == pytest.approx(math.sqrt(12), abs=1e-3)
    assert a["safety_stock"] == pytest.approx(1.644854 * math.sqrt(12), abs=1e-3)
    assert a["reorder_point"] == pytest.approx(30 + 1.644854 * math.sqrt(12), abs=1e-3)
    assert a["order_qty"] == math.ceil(30 + 1.644854 * math.sqrt(12) - 20) == 16
    assert a["weeks_of_cover"] == 2.0 and "order 16" in a["reason"]
    # B: no forecast (no sales) -> nothing to order; a part week counts pro rata
    assert got["B"]["order_qty"] == 0 and "no sales" in got["B"]["reason"]
    from shelfwise.insights._replenishment import protection_demand

    d, sd = protection_demand(fc, 10.5)  # 1.5 weeks
    assert d == pytest.approx(15.0) and sd == pytest.approx(math.sqrt(1.5 * 4))
    with pytest.raises(ValueError):
        replenish(fc, products, service_level=1.0)


def test_detect_season_finds_the_planted_period():
    from shelfwise.insights._demand import detect_season

    rng = np.random.default_rng(0)
    t = np.arange(160)
    yearly = 100 + 40 * np.sin(2 * np.pi * t / 52) + rng.normal(0, 5, 160)
    assert detect_season(yearly, 13) == 52
    assert detect_season(np.tile(PATTERN, 20) + rng.normal(0, 1, 80), 13) == 4
    assert detect_season(rng.normal(50, 5, 100), 13) == 1


def test_replenishment_window_starts_at_as_of_not_on_monday():
    """as-of on a Wednesday (end of day): Monday-Wednesday of the first forecast week are past;
    the 7-day window covers Thursday-Sunday of that week (10 a day) and Monday-Wednesday of the
    next (20 a day): 4 x 10 + 3 x 20 = 100, not the 70 of a window read from the Monday."""
    from shelfwise.insights._data import parse_as_of
    from shelfwise.insights._replenishment import elapsed_days, replenish

    weeks = pd.date_range("2025-01-06", periods=4, freq="7D")  # Mondays
    fc = pd.DataFrame(
        {"unique_id": "A", "ds": weeks, "units": [70.0, 140.0, 140.0, 140.0], "lo": 0.0, "hi": 0.0}
    )
    fc["lo"], fc["hi"] = fc["units"], fc["units"]  # no uncertainty: the safety stock is 0
    products = pd.DataFrame({"product_id": ["A"], "stock": [0.0], "lead_time_days": [7.0]})
    at = parse_as_of("2025-01-08")  # a Wednesday
    assert elapsed_days(weeks[0], at) == pytest.approx(3.0)
    (a,) = replenish(fc, products, service_level=0.95, review_days=0, as_of=at)
    assert a["demand_lead_time"] == pytest.approx(100.0) and a["order_qty"] == 100
    # as-of at the end of the Sunday before: the window starts on the Monday, 7 days of week 0
    (b,) = replenish(fc, products, service_level=0.95, review_days=0, as_of=parse_as_of("2025-01-05"))
    assert b["demand_lead_time"] == pytest.approx(70.0)
    # a Wednesday noon: 2.5 days gone -> 4.5 x 10 + 2.5 x 20
    (c,) = replenish(fc, products, service_level=0.95, review_days=0, as_of=parse_as_of("2025-01-08T12:00"))
    assert c["demand_lead_time"] == pytest.approx(95.0)


@pytest.mark.slow  # two ingest runs through the CLI
def test_stock_and_lead_time_are_read_as_of_the_date(shop, tmp_path):
    """Three catalog deliveries: STEADY's stock 500 (at the start), 3 (ten days before as-of),
    1000 (today). At as-of the replenishment reads 3 and 14 days of lead time, not today's 1000;
    before the first delivery the stock is not known: refused, saying why."""

    from shelfwise.insights._data import parse_as_of
    from shelfwise.insights._demand import load_weekly

    work = with_catalog_deliveries(
        shop,
        tmp_path,
        [f"STEADY,Steady thing,Home > Kitchen,5,true,{s},{lead}" for s, lead in ((3, 14), (1000, 2))],
    )
    at = datetime.fromisoformat(AS_OF)
    backdate(work, {1: START + timedelta(weeks=20), 2: at - timedelta(days=10)})

    def steady(as_of: str | None) -> tuple[object, object, dict]:
        _, products, _, catalog = load_weekly(work, parse_as_of(as_of))
        row = products.set_index("product_id").loc["STEADY"]
        return row["stock"], row["lead_time_days"], catalog

    stock, lead, catalog = steady(AS_OF)
    assert (stock, lead) == (3, 14) and catalog["version"] == 2 and catalog["stock_known"]
    assert steady(None)[:2] == (1000, 2)  # no --as-of: the current catalog
    early = (START + timedelta(weeks=10)).date().isoformat()  # before the first delivery
    assert steady(early)[2] == {
        "version": None,
        "ingested_at": None,
        "stock_known": False,
        "stock_reason": "no products version had been ingested by as-of",
    }
    assert pd.isna(steady(early)[0])
    out = tmp_path / "early.csv"
    refused = run("insights", "replenishment", "--workdir", str(work), "--as-of", early, "--out", str(out))
    assert refused.returncode != 0 and not out.exists()
    assert "stock on hand and lead times at that date are not known" in refused.stderr, refused.stderr


@pytest.mark.slow  # 24 series cross-validated in process (~25 s on a loaded machine)
def test_intervals_are_calibrated_on_a_planted_series():
    """i.i.d. Normal(100, 10) weeks: the true 80% interval is 100 +- 12.8. Raw conformal bounds
    (the chosen model's own CV errors) cover ~70% of held-out weeks; the calibrated ones cover
    ~80% of 13 fresh weeks per series, and are not absurdly wide."""
    from shelfwise.insights._demand import forecast_series

    rng = np.random.default_rng(3)
    n, t = 24, 70
    ds = pd.date_range("2022-01-03", periods=t + 13, freq="7D")
    d = pd.concat(
        pd.DataFrame({"unique_id": f"S{i}", "ds": ds, "y": rng.normal(100, 10, t + 13)}) for i in range(n)
    )
    train = d[d["ds"] <= ds[t - 1]]
    truth = d[d["ds"] > ds[t - 1]].set_index(["unique_id", "ds"])["y"]
    fc, info = forecast_series(train, 13, season=1)
    (cal,) = info["calibration"]
    assert cal["held_out_errors"] == n * 13 and cal["held_out_coverage_raw"] < 0.78 and cal["factor"] > 1.05
    assert cal["held_out_coverage"] >= 0.8 and not cal["capped"]  # (what the factor gave there)
    # out of sample: the factor learned one window earlier, on the last window's weeks
    assert cal["out_of_sample_coverage"] is not None and 0.7 <= cal["out_of_sample_coverage"] <= 0.92, cal
    # i.i.d. weeks: the served forecast and the 13-week mean err alike (~8 = 10 x sqrt(2/pi))
    mae = cal["held_out_mae"]
    assert set(mae) == {"served", "recent_mean_13w", "seasonal_naive"} and 6 < mae["served"] < 10
    assert (
        6 < mae["recent_mean_13w"] < 10 and mae["seasonal_naive"] > mae["served"]
    )  # (last week: 2x the noise)
    fc = fc.set_index(["unique_id", "ds"]).reindex(truth.index)
    coverage = float(((truth >= fc["lo"]) & (truth <= fc["hi"])).mean())
    assert 0.74 <= coverage <= 0.9, coverage
    assert 22 < float((fc["hi"] - fc["lo"]).mean()) < 36  # the true width is 25.6


def test_a_slow_sellers_reorder_point_covers_its_sale_weeks():
    """Products selling 8-12 units in about one week of twelve and nothing the others (a shop's
    long tail, Superstore's products): their 80% interval is the weeks without a sale, its upper
    bound the forecast itself, and a safety stock read from its width put the reorder point
    below one sale week's units, short in most periods that had a sale. The reorder point is at
    least what 95% of the product's recent two-week spans sold (`lumpy_protection`), and the
    week's spread comes from the forecast's CV errors (`sd`) where that is wider."""
    from shelfwise.insights._demand import forecast_series
    from shelfwise.insights._replenishment import replenish

    rng = np.random.default_rng(7)
    n, t = 40, 78
    ds = pd.date_range("2022-01-03", periods=t + 2, freq="7D")
    d = pd.concat(
        pd.DataFrame(
            {
                "unique_id": f"P{i}",
                "ds": ds,
                "y": np.where(rng.random(t + 2) < 0.08, rng.integers(8, 13, t + 2), 0),
            }
        ).astype({"y": float})
        for i in range(n)
    )
    train, fresh = d[d["ds"] <= ds[t - 1]], d[d["ds"] > ds[t - 1]]
    fc, info = forecast_series(train, 4, season=1)
    products = pd.DataFrame({"product_id": [f"P{i}" for i in range(n)], "stock": 0.0, "lead_time_days": 7.0})
    widths = {r["product_id"]: r for r in replenish(fc.drop(columns=["sd"]), products, review_days=7.0)}
    got = {r["product_id"]: r for r in replenish(fc, products, review_days=7.0, history=train)}
    # whoever sold in 3 or more of the last 52 weeks (5% of its two-week spans or more) gets a
    # reorder point of at least one sale week
    sold = [p for p in got if train[train["unique_id"] == p]["y"].tail(52).gt(0).sum() >= 3]
    assert sum(widths[p]["reorder_point"] >= 8 for p in sold) < len(sold) / 2
    assert all(got[p]["reorder_point"] >= 8 for p in sold) and "a slow seller" in got[sold[0]]["reason"]
    # the next two weeks, unseen: periods with a sale were covered 1 time in 11 by the width
    # alone (seed 7), 5 in 11 now (products with 1-2 sales a year keep a reorder point of 0-2)
    two_weeks = fresh.groupby("unique_id")["y"].sum()
    sale = two_weeks.index[two_weeks > 0]

    def covered(plan: dict, ids) -> float:
        return float(np.mean([two_weeks[p] <= plan[p]["reorder_point"] for p in ids]))

    assert covered(widths, sale) < 0.1 and covered(got, sale) > 0.4
    assert covered(got, two_weeks.index) > covered(widths, two_weeks.index)


@pytest.mark.slow  # two forecasts through the CLI (~60-120 s on a loaded machine)
def test_demand_reports_category_then_product_and_the_console_page(shop, tmp_path):
    """`report demand --level category` (a planner's view): the series are the categories, and
    no reorder suggestion is made (stock and orders are a product's), in the JSON, the HTML
    and the console. Then, beside it and not over it, `shelfwise report demand` writes an
    offline HTML report with charts and the JSON the console's insights page shows; the page
    renders the forecasts and reorder suggestions. (One copy of the shop for both reports:
    the product report is the one the category report must not disturb.)"""
    import shutil

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from shelfwise.web import mount_console

    work = tmp_path / "w"
    shutil.copytree(shop, work)
    doc = json.loads(
        ok(
            run(
                "report",
                "demand",
                "--workdir",
                str(work),
                "--as-of",
                AS_OF,
                "--level",
                "category",
                "--horizon-weeks",
                "4",
                "--json",
            )
        ).stdout  # fmt: skip
    )
    assert doc["level"] == "category" and {p["id"] for p in doc["top"]} == {
        "Home > Kitchen",
        "Sports > Outdoor",
    }
    assert all(len(p["forecast"]) == 4 for p in doc["top"])
    assert doc["replenishment"]["rows"] == [] and doc["replenishment"]["per_product_only"]
    html = (work / "reports" / "demand-category.html").read_text()
    assert "Largest categories" in html and "this report forecasts categories" in html
    assert (work / "reports" / "demand-category.json").exists()
    # beside the product report, not over it: the console shows the product one's reorders
    assert not (work / "reports" / "demand.json").exists()

    proc = ok(run("report", "demand", "--workdir", str(work), "--as-of", AS_OF, "--json"))
    assert json.loads((work / "reports" / "demand-category.json").read_text())["level"] == "category"
    doc = json.loads(proc.stdout)
    html = (work / "reports" / "demand.html").read_text()
    assert html.count("<svg") >= 2 and "Reorder suggestions" in html and "http" not in html.split("<svg")[0]
    top = {p["id"]: p for p in doc["top"]}
    assert top["SEAS"]["forecast"][0][0] == (START + timedelta(weeks=WEEKS)).date().isoformat()
    assert len(top["OOS"]["censored"]) >= len(OUT_MID) + OUT_END
    rows = {r["product_id"]: r for r in doc["replenishment"]["rows"]}
    assert rows["OOS"]["order_qty"] >= 30 and rows["STEADY"]["order_qty"] == 0
    # audited, with a lineage run from the curated versions read to the two files
    audit = [json.loads(x) for x in (work / "audit" / "audit.jsonl").read_text().splitlines()]
    entry = [a for a in audit if a["action"] == "report.demand"][-1]["details"]
    assert entry["lineage_run_id"] == doc["lineage_run_id"] and entry["catalog_version"] == 1
    assert set(entry["data_versions"]) == {"events", "products"} and entry["to_order"] >= 1
    runs = [json.loads(x) for x in (work / "lineage" / "openlineage.jsonl").read_text().splitlines()]
    (done,) = [r for r in runs if r["run"]["runId"] == doc["lineage_run_id"] and r["eventType"] == "COMPLETE"]
    assert done["job"]["name"] == "shelfwise.report.demand"
    assert {i["name"].split(".")[-1] for i in done["inputs"]} == {"events", "products"}
    assert all(i["facets"]["version"]["datasetVersion"] for i in done["inputs"])  # the versions read
    assert {Path(o["name"]).name for o in done["outputs"]} == {"demand.html", "demand.json"}
    ok(run("report", "audiences", "--workdir", str(work)))
    assert "No audience yet" in (work / "reports" / "audiences.html").read_text()

    app = FastAPI()
    mount_console(app, work, lambda: None)
    with TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 40000)) as local:
        r = local.get("/console/insights")
    assert r.status_code == 200, r.text
    assert 'data-product="SEAS"' in r.text and 'id="reorders"' in r.text and "No audience yet" in r.text
    row = r.text.split('<tr data-product="OOS">', 2)[2].split("</tr>")[0]  # the reorder table's row
    assert f'<td class="n order">{rows["OOS"]["order_qty"]}</td>' in row
    assert 'href="/console/insights"' in r.text  # in the console's navigation
    # every series is a link away (the page draws the largest sellers), with its calibration said
    assert 'href="insights/demand-report"' in r.text and "shelfwise insights demand --out FILE.csv" in r.text
    assert "with the factor learned one window earlier (out of sample)" in r.text or not any(
        c.get("out_of_sample_coverage") is not None for c in doc["model"]["calibration"]
    )
    with TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 40000)) as local:
        full = local.get("/console/insights/demand-report")
        (work / "reports" / "demand.html").unlink()
        gone = local.get("/console/insights/demand-report")
    assert full.status_code == 200 and full.text == html
    assert gone.status_code == 404 and "run `shelfwise report demand`" in gone.text
    assert "product series" in r.text
    with pytest.raises(Exception, match="use product or category"):
        from shelfwise import Shop

        Shop(work).demand_report(as_of=AS_OF, level="brand")


def test_search_demand_is_offered_only_where_it_moves_with_sales():
    """Interest that tracks the demand level (views = 10 x units in expectation) gives a candidate
    forecasting interest x conversion (~0.1 units a view); interest unrelated to sales gives none."""
    from shelfwise.insights._demand import INTEREST_MODEL, _with_interest

    rng = np.random.default_rng(2)
    ds = pd.date_range("2023-01-02", periods=60, freq="7D")
    level = 5 + 3 * np.sin(np.arange(60) / 6)
    df = pd.concat(
        [
            pd.DataFrame(
                {
                    "unique_id": "TRACKS",
                    "ds": ds,
                    "y": rng.poisson(level),
                    "interest": rng.poisson(10 * level),
                }
            ),
            pd.DataFrame(
                {"unique_id": "NOISE", "ds": ds, "y": rng.poisson(level), "interest": rng.poisson(50, 60)}
            ),
        ]
    ).astype({"y": float, "interest": float})
    cv = df[df["ds"] > ds[33]].assign(cutoff=lambda d: np.where(d["ds"] <= ds[46], ds[33], ds[46]))
    fc = pd.DataFrame(
        {"unique_id": ["TRACKS", "NOISE"] * 2, "ds": [ds[-1] + pd.Timedelta(weeks=k) for k in (1, 1, 2, 2)]}
    )
    cv2, fc2 = _with_interest(df, cv[["unique_id", "ds", "cutoff", "y"]], fc, 13, 2, 1, 2)
    got = fc2.set_index("unique_id")[INTEREST_MODEL]
    assert got["NOISE"].isna().all() and cv2.loc[cv2["unique_id"] == "NOISE", INTEREST_MODEL].isna().all()
    tracks = df[df["unique_id"] == "TRACKS"]
    recent = tracks.tail(52)
    conv = recent["y"].sum() / recent["interest"].sum()
    assert 0.08 < conv < 0.12 and got["TRACKS"].notna().all()
    assert got["TRACKS"].iloc[0] == pytest.approx(conv * tracks["interest"].tail(4).mean(), rel=0.35)
    # a shop where interest moves with no product's sales at some origin (string ids, arrow-typed
    # as statsforecast returns them): no candidate there, and no error
    only = df[df["unique_id"] == "NOISE"].astype({"unique_id": "string[pyarrow]"})
    cv3, fc3 = _with_interest(
        only,
        cv[cv["unique_id"] == "NOISE"][["unique_id", "ds", "cutoff", "y"]].astype({"unique_id": "string[pyarrow]"}),
        fc[fc["unique_id"] == "NOISE"].astype({"unique_id": "string[pyarrow]"}),
        13, 2, 1, 2,
    )  # fmt: skip
    assert cv3[INTEREST_MODEL].isna().all() and fc3[INTEREST_MODEL].isna().all()


def test_the_total_band_adds_the_products_errors_as_independent():
    import pandas as pd

    from shelfwise.insights._replenishment import Z80
    from shelfwise.insights._reports import _total_band

    # four products, each 10 +- 2 standard deviations in a week: the total is 40 with an sd of 4
    # (not 8, which summing the bounds would give)
    week = pd.Timestamp("2026-01-05")
    fc = pd.DataFrame(
        {"ds": [week] * 4, "units": [10.0] * 4, "lo": [10 - 2 * Z80] * 4, "hi": [10 + 2 * Z80] * 4}
    )
    band = _total_band(fc).loc[week]
    assert band["units"] == 40.0
    assert band["hi"] == pytest.approx(40 + 4 * Z80) and band["lo"] == pytest.approx(40 - 4 * Z80)


def test_top_k_takes_the_lowest_cv_errors():
    """The combination rule's known answer: per series the k candidates with the lowest CV error,
    best first (the default k is TOP_K, 4); the Ensemble (itself a mean) and candidates not offered (NaN) never count; ties
    go by column order; nothing offered: the Ensemble."""
    from shelfwise.insights._demand import top_k

    nan = np.nan
    mae = pd.DataFrame(
        {
            "SeasonalNaive": [5.0, 1.0, nan, 2.0],
            "AutoETS": [2.0, 3.0, nan, 2.0],
            "AutoTheta": [1.0, 2.0, nan, 2.0],
            "CrostonOptimized": [3.0, 9.0, nan, 2.0],
            "Ensemble": [0.5, 0.5, 0.5, 0.5],
            "InterestETS": [nan, 0.1, nan, nan],
        },
        index=["A", "B", "C", "D"],
    )
    assert top_k(mae, 3).to_dict() == {
        "A": ("AutoTheta", "AutoETS", "CrostonOptimized"),
        "B": ("InterestETS", "SeasonalNaive", "AutoTheta"),
        "C": ("Ensemble",),
        "D": ("SeasonalNaive", "AutoETS", "AutoTheta"),
    }
    assert top_k(mae).to_dict() == {
        "A": ("AutoTheta", "AutoETS", "CrostonOptimized", "SeasonalNaive"),
        "B": ("InterestETS", "SeasonalNaive", "AutoTheta", "AutoETS"),
        "C": ("Ensemble",),
        "D": ("SeasonalNaive", "AutoETS", "AutoTheta", "CrostonOptimized"),
    }
    assert top_k(mae, 1).to_dict() == {
        "A": ("AutoTheta",),
        "B": ("InterestETS",),
        "C": ("Ensemble",),
        "D": ("SeasonalNaive",),
    }


def test_a_combination_is_the_mean_of_its_candidates_forecasts():
    """`_combined`: the mean of the chosen candidates' forecasts per row; a chosen candidate with
    no forecast in a row (NaN) drops out of that row's mean; none left: the Ensemble."""
    from shelfwise.insights._demand import _combined

    frame = pd.DataFrame(
        {
            "unique_id": ["A", "A", "B", "C"],
            "AutoETS": [10.0, 20.0, 4.0, 1.0],
            "AutoTheta": [12.0, 23.0, 8.0, 1.0],
            "InterestETS": [np.nan, 29.0, np.nan, np.nan],
            "Ensemble": [0.0, 0.0, 0.0, 7.0],
        }
    )
    chosen = pd.Series(
        {"A": ("AutoETS", "AutoTheta", "InterestETS"), "B": ("AutoTheta",), "C": ("InterestETS",)}
    )
    got = _combined(frame, ["AutoETS", "AutoTheta", "InterestETS", "Ensemble"], chosen)
    assert got.tolist() == [11.0, 24.0, 8.0, 7.0]


def _planted_period4(seed: int = 4) -> pd.DataFrame:
    """Three weekly series of 80 weeks with the period-4 PATTERN (scaled 1x, 2x, 3x) and seeded
    noise."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2023-01-02", periods=80, freq="7D")
    return pd.concat(
        pd.DataFrame(
            {"unique_id": f"S{i}", "ds": ds, "y": np.tile(PATTERN, 20) * (1 + i) + rng.normal(0, 3, 80)}
        )
        for i in range(3)
    )


def test_forecast_series_reports_the_mean_of_the_four_best():
    """End to end on planted period-4 series: each series' forecast is labelled with the
    candidates it averages (the default pool of four smooth models, GroupTheta among them: all
    four) and equals the mean of their own forecasts (from the same fits); the single-best rule
    (`also=("series",)`) gives one of the candidates' forecasts."""
    from shelfwise.insights._demand import DEFAULT_MODELS, forecast_series

    d = _planted_period4()
    names = ("SeasonalNaive", "AutoETS", "AutoTheta", "GroupTheta", "Ensemble")
    fc, info = forecast_series(d, 8, season=4, also=(*names, "series"))
    assert sum(info["chosen"].values()) == 3
    assert "GroupTheta" in DEFAULT_MODELS
    for _, f in fc.groupby("unique_id"):
        (label,) = f["model"].unique()
        parts = label.split("+")
        # 4 smooth candidates: all, sorted
        assert parts == ["AutoETS", "AutoTheta", "GroupTheta", "SeasonalNaive"]
        assert np.allclose(f["units"], f[[f"units_{m}" for m in parts]].mean(axis=1))
        assert any(np.allclose(f["units_series"], f[f"units_{m}"]) for m in names)
        assert (f["lo"] <= f["units"]).all() and (f["units"] <= f["hi"]).all()
    # in phase with the planted period: the peak week of the pattern is the highest forecast
    s0 = fc[fc["unique_id"] == "S0"].reset_index(drop=True)
    assert int(s0["units"].iloc[:4].to_numpy().argmax()) == int(np.argmax(np.roll(PATTERN, -(80 % 4))))


def test_a_group_whose_13_week_mean_did_better_held_out_is_served_that_mean():
    """Four series that rose from 10 to 60 a week and then stayed at 60 for 26 weeks: the models
    follow the climb past its end (held-out MAE about 3 units a week) where each series' mean of
    its last 13 weeks is right (about 1.5). That group is served the mean (about 60, its own
    interval around it), and says so (`served_baseline`); period-4 series are still served the
    models (`test_forecast_series_reports_the_mean_of_the_four_best`)."""
    from shelfwise.insights._demand import forecast_series

    rng = np.random.default_rng(5)
    ds = pd.date_range("2022-01-03", periods=96, freq="7D")
    d = pd.concat(
        pd.DataFrame(
            {
                "unique_id": f"S{u}",
                "ds": ds,
                "y": (
                    np.r_[np.full(40, 10.0), np.linspace(10, 60, 30), np.full(26, 60.0)]
                    + rng.normal(0, 2, 96)
                ).clip(0),
            }
        )
        for u in range(4)
    )
    fc, info = forecast_series(d, 13, season=1, progress=False)
    (cal,) = info["calibration"]
    mae = cal["held_out_mae"]
    assert mae["recent_mean_13w"] < mae["served"] / 1.5, mae
    assert cal.get("served_baseline") == "recent_mean_13w" and info["chosen"] == {"RecentMean13w": 4}
    for uid, f in fc.groupby("unique_id"):
        last13 = d[d["unique_id"] == uid]["y"].tail(13).mean()
        assert np.allclose(f["units"], last13) and abs(last13 - 60) < 2
        assert (f["lo"] < f["units"]).all() and (f["units"] < f["hi"]).all()


def _planted_cv(offsets: dict[str, np.ndarray], windows: int = 3, series: int = 6) -> pd.DataFrame:
    """A cross-validation frame: `windows` cutoffs x 13 weeks per series, a planted truth, and
    each candidate = truth + its planted error (`offsets[name]`, one value per row)."""
    rows = windows * 13 * series
    y = np.full(rows, 50.0)
    cv = pd.DataFrame(
        {
            "unique_id": np.repeat([f"S{i}" for i in range(series)], windows * 13),
            "cutoff": np.tile(np.repeat(np.arange(windows), 13), series),
            "y": y,
        }
    )
    for name, off in offsets.items():
        cv[name] = y + off[:rows]
    cv["Ensemble"] = cv[list(offsets)].mean(axis=1)
    return cv


def test_choose_rule_picks_the_single_best_where_one_candidate_is_clearly_best():
    """Known answer for `select="auto"`: A forecasts exactly, B and C are off by +10 and +20 on
    every row: held out, the single best (A) beats the top-2 mean (+5) and the top-3 mean (+10)."""
    from shelfwise.insights._demand import choose_rule

    n = 3 * 13 * 6
    cv = _planted_cv({"A": np.zeros(n), "B": np.full(n, 10.0), "C": np.full(n, 20.0)})
    hist = pd.DataFrame(
        {"unique_id": np.repeat([f"S{i}" for i in range(6)], 20), "y": np.tile([0.0, 2.0], 60)}
    )
    rule, scores = choose_rule(cv, ["A", "B", "C", "Ensemble"], hist)
    assert rule == "series"
    assert scores["series"] == 0.0 and scores["top2"] == pytest.approx(2.5) and scores["combine"] == 5.0
    # series named by numbers, not strings: the same answer (the scale and the errors met on
    # strings once; numbers made every score NaN and the first rule won by default)
    as_int = {f"S{i}": i for i in range(6)}
    cv["unique_id"], hist["unique_id"] = cv["unique_id"].map(as_int), hist["unique_id"].map(as_int)
    assert choose_rule(cv, ["A", "B", "C", "Ensemble"], hist) == (rule, scores)


def test_choose_rule_combines_where_the_candidates_err_independently():
    """Known answer: three candidates with independent errors of the same size (seeded): whichever
    ranks first on the earlier windows is no better on the next, and the mean of the three cancels
    part of each one's error: the top-3 mean wins held out (over the top-2 mean: sd 10/sqrt(2))."""
    from shelfwise.insights._demand import choose_rule

    rng = np.random.default_rng(7)
    n = 3 * 13 * 6
    cv = _planted_cv({c: rng.normal(0, 10, n) for c in ("A", "B", "C")})
    hist = pd.DataFrame(
        {"unique_id": np.repeat([f"S{i}" for i in range(6)], 20), "y": np.tile([0.0, 2.0], 60)}
    )
    rule, scores = choose_rule(cv, ["A", "B", "C", "Ensemble"], hist)
    assert rule == "combine"
    # (the single-best rule may pick the Ensemble column, itself the mean of the three)
    assert scores["combine"] < min(scores["top2"], scores["series"])


def test_auto_rule_forecast_is_the_chosen_rules_forecast():
    """End to end: `select="auto"` reports the rule it chose per group with each rule's held-out
    score, and its forecast equals that rule's forecast from the same fits."""
    from shelfwise.insights._demand import forecast_series

    d = _planted_period4()
    fc, info = forecast_series(d, 8, season=4, select="auto", also=("combine", "top2", "series"))
    (group,) = info["rules"]
    assert set(group["held_out_scores"]) == {"combine", "top2", "series"}
    assert group["rule"] == min(group["held_out_scores"], key=group["held_out_scores"].get)
    assert np.allclose(fc["units"], fc[f"units_{group['rule']}"])


def test_group_index_is_the_planted_season_of_the_total():
    """Known answer: a total that repeats 10 x (1, 2, 3, 2) has the index (0.5, 1, 1.5, 1) (the
    ratio to its 2 x 4 centred moving average, 20 everywhere, normalized to mean 1); a total
    shorter than two seasons has none."""
    from shelfwise.insights._demand import _group_index

    total = np.tile([1.0, 2.0, 3.0, 2.0], 10) * 10
    assert np.allclose(_group_index(total, 4), [0.5, 1.0, 1.5, 1.0])
    assert _group_index(total[:7], 4) is None
    assert _group_index(total, 1) is None


def _shared_season(seed: int = 3, weeks: int = 80) -> pd.DataFrame:
    """Eight products sharing the period-4 PATTERN at small, Poisson-noisy levels (0.1x-0.45x:
    a few units a week, too noisy for each to show its season clearly)."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2023-01-02", periods=weeks, freq="7D")
    return pd.concat(
        pd.DataFrame(
            {
                "unique_id": f"P{i}",
                "ds": ds,
                "y": rng.poisson(np.tile(PATTERN, weeks // 4) * (0.1 + 0.05 * i)).astype(float),
            }
        )
        for i in range(8)
    )


def test_group_theta_forecasts_the_shared_season_in_phase():
    """GroupTheta on products that share a season: every product's forecast peaks in the pattern's
    peak week and is lowest in its low week, at about the product's own level (the mean of its
    forecast within 25% of its mean sale)."""
    from shelfwise.insights._demand import GROUP_MODEL, _group_seasonal

    d = _shared_season()
    cut = d["ds"].max()
    _, fc = _group_seasonal(d, [], 13, 4, 8)
    for uid, f in fc.groupby("unique_id"):
        f = f.sort_values("ds").reset_index(drop=True)
        phase = ((f["ds"] - d["ds"].min()).dt.days // 7 % 4).to_numpy()
        first4 = f[GROUP_MODEL].to_numpy()[:4]
        assert phase[int(first4.argmax())] == int(np.argmax(PATTERN))
        assert phase[int(first4.argmin())] == int(np.argmin(PATTERN))
        mean = d[(d["unique_id"] == uid) & (d["ds"] <= cut)]["y"].mean()
        assert f[GROUP_MODEL].mean() == pytest.approx(mean, rel=0.25)


def test_group_theta_cross_validation_is_point_in_time():
    """At a cutoff the group index and the fits use the weeks up to it only: weeks after the first
    cutoff changed (a 50x spike in every series) leave that cutoff's forecasts as they were and
    change the later ones; a cutoff with under two seasons of total has no forecast (NaN)."""
    from shelfwise.insights._demand import GROUP_MODEL, _group_seasonal

    d = _shared_season()
    cutoffs = [d["ds"].sort_values().unique()[k] for k in (5, 40, 60)]
    spiked = d.assign(y=np.where(d["ds"] > cutoffs[1], d["y"] * 50, d["y"]))
    cv_a, _ = _group_seasonal(d, cutoffs, 13, 4, 8)
    cv_b, _ = _group_seasonal(spiked, cutoffs, 13, 4, 8)
    at = [cv_a["cutoff"] == c for c in cutoffs]
    assert cv_a.loc[at[0], GROUP_MODEL].isna().all()  # 6 weeks: under two seasons of 4
    assert np.allclose(cv_a.loc[at[1], GROUP_MODEL], cv_b.loc[at[1], GROUP_MODEL])
    assert not np.allclose(cv_a.loc[at[2], GROUP_MODEL], cv_b.loc[at[2], GROUP_MODEL])


def test_a_catalog_without_stock_figures_suggests_no_orders(shop, tmp_path):
    """A catalog that states no units on hand (the demo's has no `stock` column) gives no
    reorder suggestions, and says why: `insights replenishment` refuses, the demand report shows
    "–" to order instead of "0 products to order" above rows of "no stock figure"."""
    import shutil

    work = tmp_path / "w"
    shutil.copytree(shop, work)
    data = tmp_path / "data"
    data.mkdir()
    # a full catalog delivery without stock columns: the newest products version has none
    (data / "products.csv").write_text("product_id,title,category\nSEAS,Seasonal,Home\nSTEADY,Steady,Home\n")
    ok(run("ingest", "--data", str(data), "--workdir", str(work)))
    proc = run("insights", "replenishment", "--workdir", str(work), "--out", str(tmp_path / "r.csv"))
    assert proc.returncode == 2 and "products version 2 has no stock figures" in proc.stderr, proc.stderr
    doc = json.loads(ok(run("report", "demand", "--workdir", str(work), "--json")).stdout)
    rep = doc["replenishment"]
    assert rep["stock_known"] is False and rep["rows"] == [] and "no stock figures" in rep["stock_reason"]
    html = (work / "reports" / "demand.html").read_text()
    assert "No reorder suggestions: products version 2 has no stock figures" in html


# -- data that stop before --as-of; products nobody looks at; every catalog product -----------
def test_a_quiet_week_of_a_product_nobody_looks_at_is_no_stock_out():
    """A zero week is a stock-out only with evidence of interest that week: a product with no
    views or searches at all (or a shop without view events) has quiet weeks, not lost sales."""
    from shelfwise.insights._demand import uncensor

    ds = pd.date_range("2024-01-01", periods=30, freq="7D")
    y = np.full(30, 10.0)
    y[[12, 13, 14]] = 0.0
    g = pd.DataFrame({"unique_id": "A", "ds": ds, "y": y, "interest": np.zeros(30)})
    fixed, n = uncensor(g, set())
    assert n == 0 and fixed["y"].sum() == 270.0


def test_as_of_weeks_after_the_last_event_is_no_data_not_zero_demand(shop, tmp_path):
    """--as-of 6 weeks after the shop's last event: warned, the history ends at the data (no
    invented zero weeks, so no stock-out weeks from them) and the forecasts still reach as-of
    plus the horizon; 40 weeks after: a one-line refusal, never the library's traceback."""
    from shelfwise import Shop
    from shelfwise.errors import ShelfwiseError
    from shelfwise.insights._data import parse_as_of
    from shelfwise.insights._demand import NoDataWarning, last_complete_week

    last = START + timedelta(weeks=WEEKS, days=2)  # SEAS's purchase after the fixture's as-of
    base = Shop(shop).demand(tmp_path / "now.jsonl")
    late = (last + timedelta(weeks=6)).date().isoformat()
    with pytest.warns(
        NoDataWarning, match=r"days after the shop.s last event .*: the \d+ complete weeks since hold no data"
    ):
        rep = Shop(shop).demand(tmp_path / "d.jsonl", as_of=late)
    m = rep["model"]
    # the history ends in the week of the last event (the data reach its Sunday), not at as-of
    assert (
        m["no_data_weeks"] in (5, 6) and m["last_week"] == (START + timedelta(weeks=WEEKS)).date().isoformat()
    )
    assert m["censored_weeks"] <= base["model"]["censored_weeks"] + 1 and "no data" in m["warning"]
    weeks = {json.loads(x)["week_start"] for x in (tmp_path / "d.jsonl").read_text().splitlines()}
    # the forecasts still reach as they would with data up to as-of: 13 weeks after its last week
    assert (
        max(weeks) == (last_complete_week(parse_as_of(late)) + 13 * pd.Timedelta(weeks=1)).date().isoformat()
    )
    with pytest.raises(ShelfwiseError, match="days after the shop.s last event.*refused"):
        Shop(shop).demand(tmp_path / "e.jsonl", as_of=(last + timedelta(weeks=40)).date().isoformat())
    proc = run("insights", "demand", "-w", str(shop), "--as-of", (last + timedelta(weeks=40)).date().isoformat(),
               "--out", str(tmp_path / "f.jsonl"))  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "refused" in proc.stderr


def test_every_catalog_product_is_in_the_suggestions_with_its_reason():
    """A catalog product with no stock figure and no sale is listed (not dropped), and a product
    sold but not in the catalog says so; weeks before as-of are no part of the period."""
    from shelfwise.insights._replenishment import replenish

    weeks = pd.date_range("2025-01-06", periods=8, freq="7D")
    fc = pd.concat(
        [
            pd.DataFrame({"unique_id": u, "ds": weeks, "units": units, "lo": units, "hi": units})
            for u, units in (("A", np.r_[100.0, 100.0, np.full(6, 10.0)]), ("GONE", np.full(8, 1.0)))
        ]
    )
    products = pd.DataFrame(
        {"product_id": ["A", "NOSTOCK"], "stock": [0.0, None], "lead_time_days": [7.0, 7.0]}
    )
    got = {
        r["product_id"]: r
        for r in replenish(fc, products, review_days=7, as_of=pd.Timestamp("2025-01-19T23:59"))
    }
    assert set(got) == {"A", "NOSTOCK", "GONE"}
    assert "no stock figure in the catalog" in got["NOSTOCK"]["reason"]
    assert got["GONE"]["reason"].startswith("not in the catalog")
    # as-of at the end of the second week: the two weeks of 100 are past, 14 days of 10 remain
    assert got["A"]["demand_lead_time"] == pytest.approx(20.0, abs=0.01)


def test_trailing_zero_weeks_are_stock_outs_only_after_the_catalog_said_in_stock():
    """A product the catalog lists as out of stock now, whose last three weeks sold nothing and
    nobody looked at it: with no earlier catalog version listing it in stock, all three weeks are
    its stock-out; when a version ingested on the Wednesday of the last week still listed it in
    stock, only that last week can be (the two before were quiet weeks on the shelf)."""
    from shelfwise.insights._demand import uncensor

    ds = pd.date_range("2024-01-01", periods=30, freq="7D")
    y = np.r_[np.full(27, 10.0), 0.0, 0.0, 0.0]
    interest = np.r_[np.full(27, 20.0), 0.0, 0.0, 0.0]
    g = pd.DataFrame({"unique_id": "A", "ds": ds, "y": y, "interest": interest})
    assert uncensor(g, {"A": None})[1] == 3
    assert uncensor(g, {"A": pd.NaT})[1] == 3
    fixed, n = uncensor(g, {"A": ds[29] + pd.Timedelta(days=2)})
    assert n == 1 and list(fixed["censored"].tail(3)) == [False, False, True]
    assert list(fixed["y"].tail(3)) == [0.0, 0.0, pytest.approx(10.0)]
    # listed in stock in the last second of the week before: it may have sold out after that
    assert uncensor(g, {"A": ds[29] - pd.Timedelta(seconds=1)})[1] == 2
    assert uncensor(g, {"A": ds[27]})[1] == 3  # said in stock on the Monday of the first zero week


def test_a_product_first_sold_this_week_is_forecast_at_its_rate_so_far():
    """STEADY sells 10 a week; NEW came in on Tuesday of the week as-of falls in (Thursday
    evening) and sold 30 units: it has no complete week, yet it is forecast (30 units in 2.5
    days: 84 a week, at least the 30 already sold) with a wide interval, and replenishment orders for
    it instead of saying it had no sales."""
    from shelfwise.insights._demand import PARTIAL_WEEK_MODEL, forecast_demand
    from shelfwise.insights._replenishment import replenish

    ds = pd.date_range("2024-01-01", periods=30, freq="7D")
    weekly = pd.DataFrame(
        [{"product_id": "STEADY", "ds": d, "units": 10.0, "interest": 20.0, "first_seen": d} for d in ds]
    )
    this_week = ds[-1] + pd.Timedelta(weeks=1)
    came_in = this_week + pd.Timedelta(days=1, hours=9)  # Tuesday 09:00
    as_of = this_week + pd.Timedelta(days=3, hours=21)  # Thursday 21:00: 2.5 days after it came in
    weekly = pd.concat(
        [
            weekly,
            pd.DataFrame(
                [
                    {
                        "product_id": "STEADY",
                        "ds": this_week,
                        "units": 4.0,
                        "interest": 9.0,
                        "first_seen": this_week,
                    },
                    {
                        "product_id": "NEW",
                        "ds": this_week,
                        "units": 30.0,
                        "interest": 80.0,
                        "first_seen": came_in,
                    },
                ]
            ),
        ],
        ignore_index=True,
    )
    products = pd.DataFrame(
        {
            "product_id": ["STEADY", "NEW"],
            "category": ["C", "C"],
            "in_stock": [True, True],
            "stock": [500, 10],
            "lead_time_days": [7.0, 7.0],
        }
    )
    fc, info, history = forecast_demand(weekly, products, as_of, horizon_weeks=3)
    new = fc[fc["unique_id"] == "NEW"].sort_values("ds")
    assert list(new["ds"]) == [this_week + pd.Timedelta(weeks=k) for k in range(3)]
    assert set(new["model"]) == {PARTIAL_WEEK_MODEL} and "NEW" not in set(history["unique_id"])
    rate = 30.0 / 2.5 * 7.0
    assert np.allclose(new["units"], rate) and (new["units"] >= 30).all()
    assert (new["lo"] < rate).all() and (new["hi"] > rate).all() and (new["lo"] > 0).all()
    assert info.partial_week_series == 1 and info.series == 2 and info.chosen[PARTIAL_WEEK_MODEL] == 1
    steady = fc[fc["unique_id"] == "STEADY"]
    assert PARTIAL_WEEK_MODEL not in set(steady["model"])  # a history is forecast from its history
    rows = {
        r["product_id"]: r for r in replenish(fc, products, service_level=0.9, review_days=7, as_of=as_of)
    }
    assert rows["NEW"]["order_qty"] > 100 and "first sold this week" in rows["NEW"]["reason"]
    # at category level the product adds nothing new: its category has a history
    fc_c, info_c, _ = forecast_demand(weekly, products, as_of, horizon_weeks=3, level="category")
    assert info_c.partial_week_series == 0 and set(fc_c["unique_id"]) == {"C"}
    # as-of at the end of that Sunday, the week complete: NEW has one week of history, forecast
    # at its rate over the days it was on sale (30 in 5.6 days), not 30 a week
    later = this_week + pd.Timedelta(weeks=1) - pd.Timedelta(microseconds=1)
    fc2, info2, _ = forecast_demand(weekly, products, later, horizon_weeks=3)
    new2 = fc2[fc2["unique_id"] == "NEW"]
    assert info2.partial_week_series == 0 and set(new2["model"]) == {"RecentMean"}
    on_sale = (this_week + pd.Timedelta(weeks=1) - came_in) / pd.Timedelta(days=1)
    assert np.allclose(new2["units"], 30.0 / on_sale * 7.0)


@pytest.mark.slow  # two ingest runs through the CLI
def test_a_stock_out_starts_after_the_last_version_that_listed_the_product_in_stock(shop, tmp_path):
    """OOS is out of stock in the first catalog (the shop's start), back in stock in a delivery
    ten days before as-of, out again in one two days before: at as-of its stock-out began after
    the delivery ten days before (its last zero weeks before that were on the shelf); at a date
    when only the first catalog was known, when it began is not known."""

    from shelfwise.insights._data import parse_as_of
    from shelfwise.insights._demand import load_weekly

    work = with_catalog_deliveries(
        shop,
        tmp_path,
        [f"OOS,Often sold out,Sports > Outdoor,5,{f},{s},14" for s, f in ((5, "true"), (0, "false"))],
    )
    at = datetime.fromisoformat(AS_OF)
    back_in = at - timedelta(days=10)
    backdate(work, {2: back_in, 3: at - timedelta(days=2)})

    def until(as_of: str) -> dict[str, object]:
        _, products, _, _ = load_weekly(work, parse_as_of(as_of))
        return products.set_index("product_id")["in_stock_until"].to_dict()

    now = until(AS_OF)
    assert now["OOS"] == pd.Timestamp(back_in) and pd.isna(now["STEADY"])  # STEADY is in stock
    before = (at - timedelta(days=20)).date().isoformat()  # only the first catalog, OOS out in it
    assert pd.isna(until(before)["OOS"])
    between = (at - timedelta(days=5)).date().isoformat()  # OOS in stock then: no stock-out
    assert pd.isna(until(between)["OOS"])


@pytest.mark.parametrize(("weeks", "horizon"), [(12, 2), (13, 2), (44, 13), (45, 13)])
def test_every_cross_validation_origin_leaves_enough_weeks_to_fit(weeks, horizon):
    """A 12-week series forecast 2 weeks ahead was cut 3 times by 2 weeks, leaving 6 weeks to
    fit on: statsforecast's "tiny datasets" stopped the whole run (a 44-week one at the default
    13-week horizon kept 5). Each origin leaves at least MIN_TRAIN weeks."""
    from shelfwise.insights._demand import MIN_TRAIN, forecast_series

    rng = np.random.default_rng(5)
    ds = pd.date_range("2024-01-01", periods=weeks, freq="7D")
    series = pd.concat(
        pd.DataFrame({"unique_id": f"S{i}", "ds": ds, "y": rng.poisson(20, weeks).astype(float)})
        for i in range(3)
    )
    fc, info = forecast_series(series, horizon, season=1, jobs=1, progress=False)
    assert len(fc) == 3 * horizon and info["cv_windows"] >= 1
    assert weeks - info["cv_windows"] * info["cv_h"] >= MIN_TRAIN


def _new_product_week(last_event: pd.Timestamp, units: float, orders: float) -> pd.DataFrame:
    """STEADY's 30 weeks, then a part week in which NEW (in since that Monday 09:00) sold
    `units` in `orders` orders by `last_event`."""
    ds = pd.date_range("2024-01-01", periods=30, freq="7D")
    week = ds[-1] + pd.Timedelta(weeks=1)
    rows = [
        {"product_id": "STEADY", "ds": d, "units": 10.0, "orders": 10.0, "interest": 20.0, "first_seen": d}
        for d in ds
    ]
    rows.append(
        {"product_id": "NEW", "ds": week, "units": units, "orders": orders, "interest": 50.0,
         "first_seen": week + pd.Timedelta(hours=9)}
    )  # fmt: skip
    weekly = pd.DataFrame(rows)
    weekly.attrs["last_event"] = last_event
    return weekly


def _catalog(*ids: str) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame(
        {"product_id": list(ids), "category": ["C"] * n, "in_stock": [True] * n, "stock": [50] * n,
         "lead_time_days": [7.0] * n}
    )  # fmt: skip


def test_a_part_week_rate_ends_at_the_last_event_and_survives_a_gap():
    """The data end on Tuesday 21:00 of the week NEW came in (Monday 09:00: 1.5 days on sale,
    30 units): forecast at 140 a week whether --as-of is that evening, the Sunday after (the
    days with no data are not days without sales) or 10 days later (a gap: the history ends
    a week earlier, and NEW is still forecast, not "no sales")."""
    from shelfwise.insights._demand import PARTIAL_WEEK_MODEL, NoDataWarning, forecast_demand
    from shelfwise.insights._replenishment import replenish

    week = pd.Timestamp("2024-07-29")
    last = week + pd.Timedelta(days=1, hours=21)
    weekly = _new_product_week(last, 30.0, 30.0)
    for as_of, gap in (
        (last, 0),
        (week + pd.Timedelta(days=6, hours=12), 0),
        (last + pd.Timedelta(days=10), 1),
    ):
        if gap:
            with pytest.warns(NoDataWarning):
                fc, info, _ = forecast_demand(weekly, _catalog("STEADY", "NEW"), as_of, horizon_weeks=2)
        else:
            fc, info, _ = forecast_demand(weekly, _catalog("STEADY", "NEW"), as_of, horizon_weeks=2)
        new = fc[fc["unique_id"] == "NEW"].sort_values("ds")
        assert info.no_data_weeks == gap and info.partial_week_series == 1, as_of
        assert set(new["model"]) == {PARTIAL_WEEK_MODEL} and new["ds"].iloc[0] == week, as_of
        assert np.allclose(new["units"], 30.0 / 1.5 * 7.0), (as_of, new["units"].tolist())
        rows = {r["product_id"]: r for r in replenish(fc, _catalog("STEADY", "NEW"), as_of=as_of)}
        assert rows["NEW"]["order_qty"] > 0 and "no sales" not in rows["NEW"]["reason"]


def test_a_part_week_interval_counts_orders_not_units():
    """500 units in one order are one observation: the interval is as wide as one order's,
    scaled by its size, not +-6% as if 500 shoppers had bought."""
    from shelfwise.insights._demand import forecast_demand

    week = pd.Timestamp("2024-07-29")
    last = week + pd.Timedelta(days=1, hours=9)  # one day on sale
    bulk = forecast_demand(
        _new_product_week(last, 500.0, 1.0), _catalog("STEADY", "NEW"), last, horizon_weeks=1
    )[0]
    many = forecast_demand(
        _new_product_week(last, 500.0, 500.0), _catalog("STEADY", "NEW"), last, horizon_weeks=1
    )[0]
    b, m = (f.set_index("unique_id").loc["NEW"] for f in (bulk, many))
    assert b["units"] == pytest.approx(3500.0) and m["units"] == pytest.approx(3500.0)
    assert (m["hi"] - m["lo"]) / m["units"] < 0.15  # 500 orders: the rate is known to a few %
    assert b["lo"] < 0.5 * b["units"] and b["hi"] > 1.5 * b["units"]  # one order: hardly known


def test_forecast_demand_censors_only_after_the_catalog_said_in_stock():
    """The mapping `load_weekly` gives (`in_stock_until`) reaches the censoring: A's last three
    weeks sold nothing and nobody looked; out of stock now, listed in stock on the Wednesday
    of the last week: one stock-out week, not three."""
    from shelfwise.insights._demand import forecast_demand

    ds = pd.date_range("2024-01-01", periods=30, freq="7D")
    weekly = pd.DataFrame(
        [
            {"product_id": p, "ds": d, "units": 0.0 if (p == "A" and k >= 27) else 10.0,
             "interest": 0.0 if (p == "A" and k >= 27) else 20.0}
            for p in ("A", "B")
            for k, d in enumerate(ds)
        ]
    )  # fmt: skip
    as_of = ds[-1] + pd.Timedelta(days=7) - pd.Timedelta(microseconds=1)
    products = _catalog("A", "B").assign(in_stock=[False, True], stock=[0, 50])
    unknown = products.assign(in_stock_until=pd.NaT)
    known = products.assign(in_stock_until=[ds[29] + pd.Timedelta(days=2), pd.NaT])
    assert forecast_demand(weekly, unknown, as_of, horizon_weeks=2)[1].censored_weeks == 3
    assert forecast_demand(weekly, known, as_of, horizon_weeks=2)[1].censored_weeks == 1


def test_an_old_sales_history_under_todays_views_is_refused_not_forecast_as_zero():
    """A shop's 30 weeks of sales end in 2024 and served views go on: as-of defaulted to the
    last view and every forecast was 0.0 (the weeks between read as weeks without a sale). More
    than a year without a sale, and never so long before, is refused, naming the --as-of that
    forecasts from the sales; ten quiet weeks are said beside the forecasts; a seasonal shop,
    quiet most of every year, is neither (a reviewer's Christmas shop was refused)."""
    from shelfwise.errors import ShelfwiseError
    from shelfwise.insights._demand import NoDataWarning, forecast_demand

    def history(sales: list[int], weeks: int) -> tuple[pd.DataFrame, pd.Timestamp]:
        ds = pd.date_range("2022-01-03", periods=weeks, freq="7D")
        rows = [{"product_id": "A", "ds": d, "units": 10.0 if i in sales else 0.0, "orders": 10.0 if i in sales else 0.0,
                 "interest": 20.0, "first_seen": ds[0]} for i, d in enumerate(ds)]  # fmt: skip
        weekly = pd.DataFrame(rows)
        last = ds[-1] + pd.Timedelta(days=6, hours=20)  # a view on the last week's Sunday
        weekly.attrs["last_event"] = last
        return weekly, last

    weekly, last = history(list(range(30)), 30 + 61)  # 60 complete weeks without a sale
    with pytest.raises(ShelfwiseError, match=r"no sale in the 60 complete weeks .*--as-of 2022-07-31"):
        forecast_demand(weekly, _catalog("A"), last, horizon_weeks=2)
    weekly, last = history(list(range(30)), 30 + 11)
    with pytest.warns(NoDataWarning, match="no sale in the 10 complete weeks"):
        fc, info, _ = forecast_demand(weekly, _catalog("A"), last, horizon_weeks=2)
    assert "no sale in the 10 complete weeks" in (info.warning or "") and len(fc)
    weekly, last = history(list(range(30)), 30 + 4)  # a few quiet weeks: nothing said
    assert forecast_demand(weekly, _catalog("A"), last, horizon_weeks=2)[1].warning is None
    # a Christmas shop: sales in 8 weeks of each year, as-of in late October of the third
    season = [w for y in range(3) for w in range(44 + 52 * y, 52 + 52 * y) if w < 52 * 2 + 52]
    weekly, last = history([w for w in season if w < 104], 104 + 43)
    fc, info, _ = forecast_demand(weekly, _catalog("A"), last, horizon_weeks=2)
    assert info.warning is None and len(fc)


def test_stock_delivered_years_after_the_sales_is_not_compared_with_them():
    """The grocery's sales end in 2018 and its catalog (stock, lead times) came in 2026: without
    --as-of the newest stock was set against a 2019 forecast, while --as-of 2018-12-31 was
    refused (no stock known then). One rule: a products version delivered more than four weeks
    after the history ends is not that history's stock; one delivered with it is."""
    from shelfwise.insights._demand import _stock_after_history

    late = _stock_after_history(
        {"version": 1, "ingested_at": "2026-12-05T10:00:00"}, pd.Timestamp("2018-12-31")
    )
    assert late is not None and "2,896 days after the sales history ends (2018-12-31)" in late
    assert (
        _stock_after_history({"version": 2, "ingested_at": "2026-12-05T10:00:00"}, pd.Timestamp("2026-12-04"))
        is None
    )
    assert _stock_after_history({"version": None, "ingested_at": None}, pd.Timestamp("2018-12-31")) is None


def _launches(rates: list[float], weeks: int = 20, seed: int = 0) -> tuple[pd.DataFrame, pd.Timestamp]:
    """A weekly frame (`forecast_demand`'s input) of a shop whose products launched one after
    another, each then selling Poisson(rate) orders of one unit a week; and the week after it."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2024-01-01", periods=weeks, freq="7D")
    rows = [
        {"product_id": "OLD", "ds": d, "units": 5.0, "orders": 5.0, "interest": 9.0, "first_seen": d}
        for d in ds
    ]
    for i, rate in enumerate(rates):
        for d in ds[1 + i % (weeks - 3) :]:  # launched in week 1 + i (never the history's first)
            n = float(max(rng.poisson(rate), 1 if d == ds[1 + i % (weeks - 3)] else 0))
            rows.append(
                {"product_id": f"L{i}", "ds": d, "units": n, "orders": n, "interest": 3.0, "first_seen": d}
            )
    return pd.DataFrame(rows), ds[-1] + pd.Timedelta(weeks=1)


def test_a_launch_is_forecast_at_its_rate_shrunk_towards_the_shops_earlier_launches():
    """One order of 5 units on a new product's first day was forecast at 35 units a week. Where
    the shop's launches sold about one order a week, it is forecast near one order a week (of its
    5 units), never below the units the week has sold; where launches sell anything from a few to
    fifty a week (a wide prior), a new product that sold 60 orders in three days keeps about its
    own rate; with fewer than MIN_LAUNCHES launches, the rate so far as before."""
    from shelfwise.insights._demand import (
        MIN_LAUNCHES,
        PARTIAL_WEEK_MODEL,
        days_on_sale,
        forecast_demand,
        launch_prior,
    )

    products = pd.DataFrame({"product_id": ["OLD", "NEW"], "category": ["C", "C"]})
    weekly, this_week = _launches([1.0] * 12)
    as_of = this_week + pd.Timedelta(days=6, hours=23)  # Sunday 23:00
    came_in = this_week + pd.Timedelta(days=6)  # Sunday 00:00: one day on sale
    new = pd.DataFrame([{"product_id": "NEW", "ds": this_week, "units": 5.0, "orders": 1.0, "interest": 4.0,
                         "first_seen": came_in}])  # fmt: skip
    fc, info, _ = forecast_demand(
        pd.concat([weekly, new], ignore_index=True), products, as_of, horizon_weeks=3
    )
    got = fc[fc["unique_id"] == "NEW"].sort_values("ds")
    assert set(got["model"]) == {PARTIAL_WEEK_MODEL}
    prior = info.launch_prior
    assert prior is not None and prior["launches"] == 12 and 0.7 < prior["mean_orders_per_week"] < 1.5, prior
    # the posterior mean: (alpha + 1 order) / (beta + 1/7 week) orders a week, of 5 units each
    rate = (prior["alpha"] + 1.0) / (prior["beta"] + 1.0 / 7.0) * 5.0
    assert np.allclose(got["units"].iloc[1:], rate) and 4.0 < rate < 12.0, rate  # not 35
    assert got["units"].iloc[0] == max(rate, 5.0)  # this week has sold 5 already
    assert (got["lo"] <= got["units"]).all() and (got["hi"] >= got["units"]).all()
    from dataclasses import asdict

    from shelfwise.insights._reports import _launch_line

    assert "the shop&#x27;s 12 earlier launches" in _launch_line(asdict(info))  # the report says so

    # launches that sell anything from 2 to 50 orders a week: the prior is wide, and a hot
    # launch keeps (nearly) its own rate: 60 orders in 3 days, 140 a week
    wide, this_week = _launches([2, 3, 5, 8, 12, 20, 30, 50, 4, 25], seed=1)
    hot = pd.DataFrame([{"product_id": "NEW", "ds": this_week, "units": 60.0, "orders": 60.0, "interest": 9.0,
                         "first_seen": this_week + pd.Timedelta(days=4)}])  # fmt: skip
    as_of = this_week + pd.Timedelta(days=6, hours=23, minutes=59)
    fc, info, _ = forecast_demand(pd.concat([wide, hot], ignore_index=True), products, as_of, horizon_weeks=2)
    own = 60.0 / days_on_sale(this_week + pd.Timedelta(days=4), this_week, as_of) * 7.0
    got = fc[fc["unique_id"] == "NEW"]["units"].to_numpy()
    assert info.launch_prior is not None and info.launch_prior["beta"] < 1.0, info.launch_prior
    assert np.all(got > 0.85 * own) and np.all(got < own), (got, own)

    # launches that all sell about 2 a week (a tight prior) and a breakout: 60 orders in three
    # days keeps its own rate (the prior pulled it to 4 a week), and this week is never below 60
    alike, this_week = _launches([2.0] * 40, seed=2)
    hit = hot.assign(ds=this_week, first_seen=this_week + pd.Timedelta(days=4))
    as_of = this_week + pd.Timedelta(days=6, hours=23, minutes=59)
    fc, info, _ = forecast_demand(
        pd.concat([alike, hit], ignore_index=True), products, as_of, horizon_weeks=2
    )
    got = fc[fc["unique_id"] == "NEW"].sort_values("ds")
    assert info.launch_prior is not None and info.launch_prior["beta"] > 5, info.launch_prior
    assert np.allclose(got["units"], own), (got, own)
    assert got["lo"].iloc[0] >= 60.0

    # too few launches to learn from: the rate so far (1 order of 5 in a day: 35 a week)
    few, this_week = _launches([1.0] * (MIN_LAUNCHES - 1))
    assert (
        launch_prior(few.rename(columns={"product_id": "unique_id"}), this_week - pd.Timedelta(weeks=1))
        is None
    )
    new = new.assign(ds=this_week, first_seen=this_week + pd.Timedelta(days=6))
    as_of = this_week + pd.Timedelta(days=6, hours=23)
    fc, info, _ = forecast_demand(pd.concat([few, new], ignore_index=True), products, as_of, horizon_weeks=2)
    assert info.launch_prior is None and "too few earlier launches" in _launch_line(asdict(info))
    assert np.allclose(fc[fc["unique_id"] == "NEW"]["units"], 35.0)


def test_a_daily_export_ending_on_a_sunday_forecasts_from_the_next_monday(tmp_path):
    """Dates without a time of day (a till's or an ERP's daily export): the last date is a whole
    day, as `--as-of DATE` reads it. The default as-of was that date's midnight, so an export
    ending on a Sunday left its last complete week out of the history and "forecast" it."""
    from shelfwise import Shop

    d = tmp_path / "data"
    d.mkdir()
    first, last = date(2024, 1, 1), date(2024, 6, 30)  # a Monday .. a Sunday, 26 weeks
    rng = np.random.default_rng(3)
    lines = ["user_id,session_id,product_id,event_type,timestamp,quantity"]
    day = first
    while day <= last:
        for p in ("A", "B"):
            lines.append(f",till-{day},{p},purchase,{day.isoformat()},{int(rng.integers(1, 9))}")
        day += timedelta(days=1)
    # a web shop's timed view of months before: the last date's rows alone tell a daily export
    lines.append("c1,,A,view,2024-03-14T15:03:00Z,")
    (d / "events.csv").write_text("\n".join(lines) + "\n")
    (d / "products.csv").write_text("product_id,title\nA,Apples\nB,Bread\n")
    ok(run("ingest", "--data", str(d), "--workdir", str(tmp_path / "w")))
    shop = Shop(tmp_path / "w")
    default = shop.demand(tmp_path / "default.jsonl")
    explicit = shop.demand(tmp_path / "explicit.jsonl", as_of=last.isoformat())
    assert default["model"]["last_week"] == (last - timedelta(days=6)).isoformat()  # the week sold
    weeks = sorted(
        {json.loads(x)["week_start"] for x in (tmp_path / "default.jsonl").read_text().splitlines()}
    )
    assert weeks[0] == (last + timedelta(days=1)).isoformat()  # the Monday after the export
    assert (tmp_path / "default.jsonl").read_text() == (tmp_path / "explicit.jsonl").read_text()
    catalog = {"catalog_version", "catalog_ingested_at", "stock_reason"}  # (an explicit as-of reads
    # the catalog as of then: this one was ingested today)
    catalog.add("free_text_searches")  # (it holds the seconds its step took)
    assert {k: v for k, v in default["model"].items() if k not in catalog} == {
        k: v for k, v in explicit["model"].items() if k not in catalog
    }


def test_a_quarantined_stock_row_says_the_suggestion_uses_the_earlier_stock(shop, tmp_path):
    """A stock feed's row for a catalog product fails its check (`-3` on hand): the product is
    still suggested from its earlier row's stock, and that is said on its line and in the run's
    warning (it said "not in the catalog, so no stock figure" in the Python answer alone)."""
    import duckdb

    from shelfwise import Shop

    work = with_catalog_deliveries(shop, tmp_path, ["STEADY,Steady thing,Home > Kitchen,5,true,-3,7"])
    with duckdb.connect(str(work / "warehouse.duckdb")) as con:  # (delivered a week after the catalog)
        con.execute("UPDATE quarantine.rows SET quarantined_at = ?", [START + timedelta(weeks=1)])
    out = tmp_path / "reorder.csv"
    proc = ok(run("insights", "replenishment", "-w", str(work), "--as-of", AS_OF, "--out", str(out)))
    rows = {r["product_id"]: r for r in csv.DictReader(out.open())}
    assert rows["STEADY"]["stock"] == "500" and "earlier row's stock" in rows["STEADY"]["reason"]
    assert "earlier row's stock" not in rows["SEAS"]["reason"]
    assert "1 product(s) of the catalog have a later products row in quarantine" in proc.stderr, proc.stderr
    assert "(STEADY)" in proc.stderr and "2 product(s) are not in the catalog" in proc.stderr  # BAD*
    left = Shop(work).replenishment(tmp_path / "again.csv", as_of=AS_OF)["left_out"]
    assert left["stale_stock"] == ["STEADY"] and left["quarantined_product_rows"] == 3
    # a good row delivered after the bad one: the stock in use is the newest, nothing is stale
    # (the bad row stays open in the quarantine: it was not fixed, only overtaken)
    ok(run("ingest", "--append", "--data", str(_catalog_dir(tmp_path / "fixed", "STEADY,Steady thing,Home > Kitchen,5,true,480,7")), "--workdir", str(work)))  # fmt: skip
    backdate(work, {2: START + timedelta(weeks=2)})
    proc = ok(run("insights", "replenishment", "-w", str(work), "--as-of", AS_OF, "--out", str(out)))
    rows = {r["product_id"]: r for r in csv.DictReader(out.open())}
    assert rows["STEADY"]["stock"] == "480" and "earlier row's stock" not in rows["STEADY"]["reason"]
    assert "later products row in quarantine" not in proc.stderr, proc.stderr
    # one stock feed with a good row and a bad one: its version is made after the bad row was
    # quarantined, and the bad row's product still reads the earlier stock (by run, not by clock)
    both = "SEAS,Seasonal thing,Home > Kitchen,5,true,45,14\nSTEADY,Steady thing,Home > Kitchen,5,true,-4,7"
    ok(
        run(
            "ingest", "--append", "--data", str(_catalog_dir(tmp_path / "feed", both)), "--workdir", str(work)
        )
    )
    backdate(work, {3: START + timedelta(weeks=3)})
    proc = ok(run("insights", "replenishment", "-w", str(work), "--as-of", AS_OF, "--out", str(out)))
    rows = {r["product_id"]: r for r in csv.DictReader(out.open())}
    assert rows["SEAS"]["stock"] == "45" and "earlier row's stock" not in rows["SEAS"]["reason"]
    assert rows["STEADY"]["stock"] == "480" and "earlier row's stock" in rows["STEADY"]["reason"]


def _catalog_dir(d: Path, row: str) -> Path:
    d.mkdir()
    (d / "products.csv").write_text(f"product_id,title,category,price,in_stock,stock_qty,lead_time\n{row}\n")
    return d


def test_a_series_forecast_above_its_actuals_in_cross_validation_keeps_an_interval_around_it():
    """A promotion-driven series: ~5 a week, with a spike of 250 in the last week before each
    cross-validation origin and before the forecast. The level models follow the spike, the
    forecast is far above what sells in every CV week, so the CV errors' 90% quantile is below
    zero and the 80% interval ended at the forecast (hi == units: "never more than the
    forecast"). The interval holds the forecast with room on both sides, and the series is named."""
    from shelfwise.insights._demand import forecast_series, one_sided_warning

    rng = np.random.default_rng(5)
    t = 80
    ds = pd.date_range("2022-01-03", periods=t, freq="7D")
    frames = [
        pd.DataFrame({"unique_id": f"S{i}", "ds": ds, "y": rng.poisson(20, t).astype(float)})
        for i in range(8)
    ]
    promo = rng.poisson(5, t).astype(float)
    for k in (t - 40, t - 27, t - 14, t - 1):  # the last week of each CV window's training, and the series'
        promo[k] = 250.0
    frames.append(pd.DataFrame({"unique_id": "PROMO", "ds": ds, "y": promo}))
    fc, info = forecast_series(pd.concat(frames, ignore_index=True), 13, season=1, jobs=1, progress=False)
    p = fc[fc["unique_id"] == "PROMO"]
    assert (p["units"] > 20).all()  # the forecast follows the last spike, as in the CV
    assert (p["hi"] > p["units"] + 1.0).all(), p  # room above the forecast
    assert (p["lo"] < p["units"] - 1.0).all()  # and below it
    shifts = info["one_sided_bands"]
    # the forecast was far too high in CV (the group is served its 13-week mean, which did better
    # held out than the models that followed the spike: still ~19 a week above the actuals)
    assert info["calibration"][0].get("served_baseline") == "recent_mean_13w"
    assert set(shifts) == {"PROMO"} and shifts["PROMO"] < -15
    assert "PROMO (" in one_sided_warning(shifts) and "above the actual" in one_sided_warning(shifts)
    steady = fc[fc["unique_id"] != "PROMO"]
    assert ((steady["lo"] < steady["units"]) & (steady["hi"] > steady["units"])).all()


def test_the_interval_widens_with_the_horizon_as_the_cross_validation_errors_do():
    """Random walks (a level that wanders by N(0, 5) a week): the error of a forecast h weeks
    ahead has sd 5 x sqrt(h), so the true 80% interval of week 13 is sqrt(13) = 3.6x as wide as
    week 1's. One width for every week (the CV errors pooled over the steps) was too wide near
    and too narrow far. i.i.d. weeks around a level keep one width."""
    from shelfwise.insights._demand import forecast_series

    rng = np.random.default_rng(8)
    t, n = 90, 30
    ds = pd.date_range("2022-01-03", periods=t, freq="7D")
    walks = pd.concat(
        pd.DataFrame({"unique_id": f"W{i}", "ds": ds, "y": 500 + np.cumsum(rng.normal(0, 5, t))})
        for i in range(n)
    )
    fc, info = forecast_series(walks, 13, season=1, jobs=1, progress=False)
    (cal,) = info["calibration"]
    assert 0.3 <= cal["horizon_growth"] <= 0.8, cal  # sqrt(h): 0.5
    width = (fc["hi"] - fc["lo"]).groupby(fc.groupby("unique_id").cumcount() + 1).mean()
    assert 2.0 < width[13] / width[1] < 5.5, width  # sqrt(13) = 3.6
    assert width.is_monotonic_increasing
    flat = pd.concat(
        pd.DataFrame({"unique_id": f"F{i}", "ds": ds, "y": rng.normal(500, 5, t)}) for i in range(n)
    )
    fc, info = forecast_series(flat, 13, season=1, jobs=1, progress=False)
    assert info["calibration"][0]["horizon_growth"] < 0.15
    width = (fc["hi"] - fc["lo"]).groupby(fc.groupby("unique_id").cumcount() + 1).mean()
    assert width[13] / width[1] < 1.5, width


def test_a_product_whose_sales_stopped_is_forecast_at_zero_and_not_reordered_silently():
    """STOP sold ~10 every week for two years, then nothing for 8 weeks: it was forecast at its
    old level and, with stock 0, replenishment suggested re-ordering it without a word. Its sales
    stopped (8 weeks at a 100% weekly sale rate: improbable as chance, longer than any quiet spell
    before): forecast at zero, named, and the suggestion says why it orders nothing. A product that
    sells in a third of its weeks and was quiet 8 weeks, and a seasonal one in its usual off
    months, have not stopped."""
    from shelfwise.insights._demand import STOPPED_MODEL, NoDataWarning, forecast_demand
    from shelfwise.insights._replenishment import replenish

    rng = np.random.default_rng(2)
    n = 144  # the last 10 weeks are SEASON's usual off months (weeks 30-51 of each year)
    ds = pd.date_range("2022-01-03", periods=n, freq="7D")
    stop = rng.poisson(10, n).astype(float)
    stop[-8:] = 0.0
    slow = (rng.random(n) < 0.35) * 3.0
    slow[-8:] = 0.0
    slow[[-30, -20]] = 3.0
    season = np.where((np.arange(n) % 52) < 30, rng.poisson(8, n), 0).astype(float)  # quiet 22 weeks a year
    steady = rng.poisson(12, n).astype(float)
    rows = [
        {"product_id": p, "ds": d, "units": y[i], "orders": y[i], "interest": 0.0, "first_seen": ds[0]}
        for p, y in (("STOP", stop), ("SLOW", slow), ("SEASON", season), ("STEADY", steady))
        for i, d in enumerate(ds)
    ]
    weekly = pd.DataFrame(rows)
    as_of = ds[-1] + pd.Timedelta(days=7, microseconds=-1)
    weekly.attrs["last_event"] = ds[-1] + pd.Timedelta(days=6)
    with pytest.warns(NoDataWarning, match=r"1 series stopped selling.*STOP \(8 weeks\)"):
        fc, info, _ = forecast_demand(
            weekly, _catalog("STOP", "SLOW", "SEASON", "STEADY"), as_of, horizon_weeks=4
        )
    assert info.stopped_selling == {"STOP": 8}
    s = fc[fc["unique_id"] == "STOP"]
    assert (s["units"] == 0).all() and (s["hi"] == 0).all() and (s["model"] == STOPPED_MODEL).all()
    assert (s["stopped_selling_weeks"] == 8).all()
    assert (fc.loc[fc["unique_id"] != "STOP", "stopped_selling_weeks"].isna()).all()
    assert (fc.loc[fc["unique_id"] == "STEADY", "units"] > 8).all()
    products = _catalog("STOP", "SLOW", "SEASON", "STEADY").assign(stock=[0, 0, 0, 0])
    got = {r["product_id"]: r for r in replenish(fc, products, as_of=as_of)}
    assert got["STOP"]["order_qty"] == 0 and got["STOP"]["stopped_selling_weeks"] == 8
    assert (
        "stopped selling" in got["STOP"]["reason"] and "no sale in the last 8 weeks" in got["STOP"]["reason"]
    )
    assert got["STEADY"]["order_qty"] > 0 and got["STEADY"]["stopped_selling_weeks"] is None


def test_a_shop_closed_on_sundays_completes_its_week_on_saturday(tmp_path):
    """A daily export of a shop that never trades on Sundays, ending on Saturday: its last
    Mon-Sat week was left out (the week waited for a Sunday that never comes) and forecast as if
    unsold; --as-of the Sunday after warned "1 week after the shop's last event" for one day. The
    closed weekday is read from the history; a gap is said in days, with the weeks it spans."""
    from shelfwise import Shop
    from shelfwise.insights._demand import closed_weekdays, last_complete_week

    d = tmp_path / "data"
    d.mkdir()
    first, last = date(2024, 1, 1), date(2024, 6, 29)  # a Monday .. a Saturday, 26 weeks
    rng = np.random.default_rng(4)
    lines = ["user_id,session_id,product_id,event_type,timestamp,quantity"]
    day = first
    while day <= last:
        if day.weekday() != 6:  # closed on Sundays
            for p in ("A", "B"):
                lines.append(f",till-{day},{p},purchase,{day.isoformat()},{int(rng.integers(1, 9))}")
        day += timedelta(days=1)
    (d / "events.csv").write_text("\n".join(lines) + "\n")
    (d / "products.csv").write_text("product_id,title\nA,Apples\nB,Bread\n")
    ok(run("ingest", "--data", str(d), "--workdir", str(tmp_path / "w")))
    shop = Shop(tmp_path / "w")
    monday = (last - timedelta(days=5)).isoformat()  # the last Mon-Sat week, all of it sold
    rep = shop.demand(tmp_path / "default.jsonl")
    assert rep["model"]["last_week"] == monday and rep["model"]["closed_weekdays"] == [6]
    assert rep["model"]["warning"] is None
    sunday = shop.demand(tmp_path / "sunday.jsonl", as_of=(last + timedelta(days=1)).isoformat())
    assert sunday["model"]["last_week"] == monday and sunday["model"]["no_data_weeks"] == 0
    assert sunday["model"]["warning"] is None
    late = (last + timedelta(days=16)).isoformat()  # a Monday 16 days on: two weeks without data
    with pytest.warns(
        UserWarning, match=r"is 16 days after the shop's last event .* the 2 complete weeks since"
    ):
        gap = shop.demand(tmp_path / "late.jsonl", as_of=late)
    assert gap["model"]["no_data_weeks"] == 2 and gap["model"]["last_week"] == monday
    # the rule itself: a shop selling every day has no closed day; one selling now and then, none read
    assert closed_weekdays(dict.fromkeys(range(7), 8)) == []
    assert closed_weekdays({0: 8, 1: 8, 2: 8, 3: 8, 4: 8, 5: 8}) == [6]
    assert closed_weekdays({2: 3, 5: 2}) == []
    sat_night = pd.Timestamp(last) + pd.Timedelta(days=1, microseconds=-1)
    assert last_complete_week(sat_night, {6}) == pd.Timestamp(monday)
    assert last_complete_week(sat_night) == pd.Timestamp(monday) - pd.Timedelta(weeks=1)


def test_replenishment_starts_when_the_stock_was_counted_and_carries_the_bands_warning():
    """As-of is the export's last day (Saturday night) and the stock figure came in on Monday:
    the Sunday between was counted as demand the Monday stock still had to cover. The protection
    period starts at the later of the two. A band whose calibration factor hit its bound (and
    still held 77% of held-out weeks) was used for the safety stock without a word: the warning
    goes with the suggestion."""
    from types import SimpleNamespace

    from shelfwise.insights._replenishment import band_warnings, replenish

    weeks = pd.date_range("2026-11-30", periods=6, freq="7D")  # Mondays
    units = [70.0, 7.0, 7.0, 7.0, 7.0, 7.0]  # 10 a day in the as-of week, 1 a day after
    fc = pd.DataFrame(
        {
            "unique_id": "A",
            "ds": weeks,
            "units": units,
            "lo": units,
            "hi": units,
            "band_group": "smooth, season 13",
        }
    )
    products = pd.DataFrame({"product_id": ["A"], "stock": [0.0], "lead_time_days": [3.0]})
    as_of = pd.Timestamp("2026-12-05") + pd.Timedelta(days=1, microseconds=-1)  # Saturday night
    monday = pd.Timestamp("2026-12-07 01:15")
    (old,) = replenish(fc, products, review_days=4, as_of=as_of)
    assert old["demand_lead_time"] == pytest.approx(10.0 + 6.0, abs=1e-3)  # Sunday's 10 + 6 days
    (new,) = replenish(fc, products, review_days=4, as_of=as_of, stock_at=monday)
    assert new["demand_lead_time"] == pytest.approx(7.0, abs=1e-3)  # 7 days at 1 a day
    assert new["protection_from"] == monday.isoformat() and new["weekly_demand"] == pytest.approx(7.0)
    info = SimpleNamespace(
        calibration=[
            {"group": "smooth, season 13", "series": 16, "factor": 4.0, "capped": True,
             "held_out_coverage": 0.77, "out_of_sample_coverage": 0.71}
        ],
        one_sided_bands={},
    )  # fmt: skip
    (warned,) = replenish(
        fc, products, review_days=4, as_of=as_of, stock_at=monday, warnings=band_warnings(fc, info)
    )
    assert (
        "x4, the factor's bound, and held 77% of held-out weeks (71% out of sample)"
        in warned["interval_warning"]
    )
    assert warned["interval_warning"] in warned["reason"]
    fine = SimpleNamespace(
        calibration=[dict(info.calibration[0], factor=1.2, capped=False, held_out_coverage=0.8)]
    )
    assert band_warnings(fc, fine) == {}


def test_a_new_products_interval_counts_the_rate_it_does_not_know_and_the_shops_spread():
    """Grocery weeks spread far more than a Poisson count (promotions, several units a basket):
    here every product's weeks are gamma-Poisson, mean 15, variance ~ 8x the mean. A product with
    two weeks of history got the Poisson band of its mean (~[10, 20]): it held about a third of
    its next weeks. The gamma-Poisson predictive, with the shop's spread and the rate's
    uncertainty after two weeks, holds about 80% of them."""
    from shelfwise.insights._demand import forecast_series

    rng = np.random.default_rng(12)
    t, size = 60, 2.0  # negative binomial: mean 15, variance 15 + 15^2 / 2 = 127.5

    def weeks(k: int) -> np.ndarray:
        return rng.negative_binomial(size, size / (size + 15.0), k).astype(float)

    ds = pd.date_range("2022-01-03", periods=t, freq="7D")
    old = [pd.DataFrame({"unique_id": f"P{i}", "ds": ds, "y": weeks(t)}) for i in range(20)]
    new = [pd.DataFrame({"unique_id": f"N{i}", "ds": ds[-2:], "y": weeks(2)}) for i in range(150)]
    fc, _ = forecast_series(pd.concat(old + new, ignore_index=True), 13, season=1, jobs=1, progress=False)
    fc = fc[fc["unique_id"].str.startswith("N")]
    assert set(fc["model"]) == {"RecentMean"}
    truth = weeks(len(fc))  # each new product's next weeks, from the same process
    inside = float(((truth >= fc["lo"]) & (truth <= fc["hi"])).mean())
    assert 0.7 <= inside <= 0.92, inside
    assert float(fc["sd"].median()) > 8.0  # the week's spread, not sqrt(15) = 3.9


def test_the_recent_mean_is_served_only_when_it_did_clearly_better():
    """On one held-out window a 13-week mean ties the models on a drifting level by chance; the
    group keeps its models unless the mean did better by the margin (the planted interest shop
    lost its search signal to a mean that won by a hair on 28 of 30 series)."""
    from shelfwise.insights._demand import BASELINE_KEY, BASELINE_MARGIN, baseline_clearly_better

    assert BASELINE_MARGIN > 1.0
    assert not baseline_clearly_better({"served": 10.0, BASELINE_KEY: 9.0})  # a hair: models kept
    assert baseline_clearly_better({"served": 10.0, BASELINE_KEY: 4.5})  # the walk's 2.2x: the mean
    assert not baseline_clearly_better({"served": 10.0})  # no baseline measured
