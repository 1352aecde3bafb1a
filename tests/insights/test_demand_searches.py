"""Free-text searches as demand (issue 18.3): a search with a query and no product_id is resolved
to the one product it clearly names (`insights._searched`), point in time, and counted in that
product's weekly interest, so the weeks a product was out of stock and only searched for are
censored (demand estimated, not read as zero). Vague queries name nothing; nothing after --as-of
is read (neither events nor a later catalog version); an erased user's searches are gone."""

from __future__ import annotations

import csv
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .test_demand import backdate, ok, run

START = datetime(2024, 1, 1)  # a Monday
WEEKS = 30
AS_OF = (START + timedelta(weeks=WEEKS) - timedelta(days=1)).date().isoformat()  # a Sunday
OUT = range(18, 22)  # DRILL out of stock: no sale, no view, only searches for it
NAMING = ("bosch drill 18v", "Bosch 18V drill", "bosh 18v drill")  # name DRILL (a typo too)
VAGUE = ("drill", "bosch drill", "cordless drill", "bosch")  # name nothing (a kind, a tie)
ERASED = "ERASEME"  # the user of every naming search in week OUT[1]


def planted(d: Path) -> dict[str, int]:
    """DRILL (Bosch 18V) sells ~12 a week with views, and shoppers search for it by name without
    a product_id (~6 a week; ~12 a week while it is out of stock, weeks OUT, when it has no
    other trace). DRILL12 (Bosch 12V) and KETTLE sell steadily; vague queries run every week.
    After --as-of: 300 searches naming DRILL12 and 900 DRILL sales (must not be read). Returns
    the planted counts of searches up to as-of: naming DRILL (in all, in the weeks OUT, and
    ERASED's) and vague."""
    rng = np.random.default_rng(21)
    d.mkdir(parents=True)
    with open(d / "products.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["product_id", "title", "brand", "category", "price", "in_stock", "stock_qty"])
        w.writerow(["DRILL", "GSR 18V cordless drill", "Bosch", "Tools", 99, "true", 20])
        w.writerow(["DRILL12", "GSR 12V cordless drill", "Bosch", "Tools", 79, "true", 20])
        w.writerow(["KETTLE", "Steel kettle 1.7 l", "Acme", "Kitchen", 25, "true", 50])
    rows: list[list[object]] = []
    counts = {"naming": 0, "naming_out": 0, "erased": 0, "vague": 0}

    def at(k: int) -> str:
        ts = START + timedelta(weeks=k, hours=int(rng.integers(1, 166)), seconds=int(rng.integers(0, 3600)))
        return ts.strftime("%Y-%m-%dT%H:%M:%SZ")

    def ev(user: str, pid: str, kind: str, k: int, query: str = "", qty: object = "") -> None:
        rows.append([user, pid, kind, at(k), f"S{len(rows)}", query, qty])

    for k in range(WEEKS + 2):
        after = k >= WEEKS
        out = k in OUT
        if after:
            for _ in range(300):
                ev(f"U{rng.integers(0, 50)}", "", "search", k, "bosch 12v drill")
            ev("U1", "DRILL", "purchase", k, qty=900)
            continue
        n_search = int(rng.poisson(12 if out else 6))
        for _ in range(n_search):
            user = ERASED if k == OUT[1] else f"U{rng.integers(0, 50)}"
            ev(user, "", "search", k, str(rng.choice(NAMING)))
            counts["naming"] += 1
            counts["naming_out"] += int(out)
            counts["erased"] += int(user == ERASED)
        for q in VAGUE:
            for _ in range(int(rng.poisson(3))):
                ev(f"U{rng.integers(0, 50)}", "", "search", k, q)
                counts["vague"] += 1
        if not out:
            for _ in range(12):
                ev(f"U{rng.integers(0, 50)}", "DRILL", "view", k)
            ev(f"U{rng.integers(0, 50)}", "DRILL", "purchase", k, qty=max(1, int(rng.poisson(12))))
        for pid, rate in (("DRILL12", 6), ("KETTLE", 8)):
            for _ in range(10):
                ev(f"U{rng.integers(0, 50)}", pid, "view", k)
            ev(f"U{rng.integers(0, 50)}", pid, "purchase", k, qty=max(1, int(rng.poisson(rate))))
    with open(d / "events.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "product_id", "event_type", "timestamp", "session_id", "query", "quantity"])
        w.writerows(rows)
    return counts


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """The planted shop, ingested; then a later catalog delivery (after as-of) adds DRILLSET
    "GSR 18V cordless drill set" by Bosch, which makes "bosch drill 18v" a tie from then on."""
    base = tmp_path_factory.mktemp("searched")
    counts = planted(base / "data")
    ok(run("ingest", "--data", str(base / "data"), "--workdir", str(base / "w")))
    later = base / "later"
    later.mkdir()
    (later / "products.csv").write_text(
        "product_id,title,brand,category,price,in_stock,stock_qty\n"
        "DRILLSET,GSR 18V cordless drill set,Bosch,Tools,149,true,5\n"
    )
    ok(run("ingest", "--append", "--data", str(later), "--workdir", str(base / "w")))
    backdate(base / "w", {1: START, 2: START + timedelta(weeks=WEEKS + 1)})
    return base / "w", counts


def history(workdir: Path, as_of: str | None) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The weekly aggregates and the uncensored product series at `as_of` (no forecast)."""
    from shelfwise.insights._data import parse_as_of
    from shelfwise.insights._demand import last_complete_week, load_weekly, uncensor, weekly_grid

    weekly, _, at, _ = load_weekly(workdir, parse_as_of(as_of))
    grid = weekly_grid(weekly, last_complete_week(at))
    series, _ = uncensor(grid, set())
    return weekly, series, weekly.attrs["searches"]


def weeks(series: pd.DataFrame, pid: str, ks: range) -> pd.DataFrame:
    s = series[series["unique_id"] == pid].set_index("ds")
    return s.loc[[pd.Timestamp(START + timedelta(weeks=k)) for k in ks]]


def test_stock_out_weeks_seen_only_through_free_text_searches_are_censored(shop):
    """The weeks DRILL was out of stock have no event naming it by id: only searches for it by
    name. They are censored and their demand estimated from those searches (> 0), the
    searches counted apart (`searched`); before this, they read as weeks without demand."""
    work, counts = shop
    weekly, series, summary = history(work, AS_OF)
    out = weeks(series, "DRILL", OUT)
    assert out["censored"].all(), out
    assert (out["y"] > 3).all(), out  # ~12 searches x ~0.7 units per interest event
    assert out["searched"].sum() == counts["naming_out"]
    # a week in stock: the searches are counted too, in the interest with the views
    k = weeks(series, "DRILL", range(5, 6)).iloc[0]
    assert k["interest"] == 12 + k["searched"] and k["searched"] > 0 and not k["censored"]
    # every naming search up to as-of was resolved to DRILL, and nothing else was resolved
    assert summary["resolved_searches"] == counts["naming"]
    assert summary["products"] == 1 and summary["resolved_queries"] == 3
    assert summary["resolved_by"] == "the catalog's names" and summary["bundle"] is None
    assert summary["catalog_version"] == 1 and not summary["catalog_after_as_of"]
    assert set(weekly.loc[weekly["searched"] > 0, "product_id"]) == {"DRILL"}


def test_vague_queries_name_nothing():
    from shelfwise.insights._searched import QueryResolver

    r = QueryResolver(
        {
            "DRILL": "GSR 18V cordless drill Bosch",
            "DRILL12": "GSR 12V cordless drill Bosch",
            "MAKITA": "DHP 18V cordless drill Makita",
            "KETTLE": "Steel kettle 1.7 l Acme",
        }
    )
    for q in VAGUE + ("18v drill", "a drill for the garden", "kettle", "zzz qqq"):
        assert r.resolve(q) is None, q
    assert r.resolve("bosch drill 18v") == "DRILL"
    assert r.resolve("the bosch 18v drill") == "DRILL"  # filler words do not count
    assert r.resolve("bosh drill 18v") == "DRILL"  # spelling corrected to the catalog's words
    assert r.resolve("makita drill") == "MAKITA"
    assert r.resolve("bosch 12v") == "DRILL12"
    assert r.resolve("steel kettle") == "KETTLE"


def test_the_search_engine_must_agree():
    """With the shop's search engine: its spelling and synonyms apply, and a product it does not
    put on its first page of keyword hits is not named (here a stand-in engine)."""
    from shelfwise.insights._searched import QueryResolver

    class Engine:
        synonyms_ = {"wireless": ["cordless"]}

        def __init__(self, page: list[str]):
            self.page = page

        def correct(self, text: str) -> str:
            return text.replace("drll", "drill")

        def keyword_hits(self, text: str, k: int) -> list[str]:
            return self.page[:k]

    names = {"DRILL": "GSR 18V cordless drill Bosch", "KETTLE": "Steel kettle Acme"}
    agrees = QueryResolver(names, Engine(["KETTLE", "DRILL"]))
    assert agrees.resolve("bosch wireless drll") == "DRILL" and agrees.how == "the search engine"
    assert QueryResolver(names).resolve("bosch wireless drill") is None  # no synonym: 2 words of 3
    # the engine puts DRILL past its first page (ENGINE_PAGE): not named
    assert QueryResolver(names, Engine(["KETTLE"] * 10 + ["DRILL"])).resolve("bosch drill") is None


def test_nothing_after_as_of_is_used(shop):
    """300 searches naming DRILL12 after as-of are not counted, and the catalog delivery after
    as-of (DRILLSET, which ties with DRILL on "bosch drill 18v") is not read: at as-of the
    searches name DRILL; read today, with both products in the catalog, they name nothing."""
    work, counts = shop
    weekly, series, summary = history(work, AS_OF)
    assert "DRILL12" not in set(weekly.loc[weekly["searched"] > 0, "product_id"])
    assert summary["searches"] == counts["naming"] + counts["vague"]
    assert summary["distinct_queries"] == len(NAMING) + len(VAGUE)
    _, _, today = history(work, None)
    assert today["catalog_version"] == 2
    assert today["searches"] == summary["searches"] + 2 * 300  # two weeks after as-of
    assert today["resolved_searches"] == 2 * 300  # "bosch 12v drill" -> DRILL12 only
    assert today["products"] == 1


def test_an_erased_users_searches_are_gone(shop, tmp_path):
    from shelfwise import Shop

    work, counts = shop
    w = tmp_path / "w"
    shutil.copytree(work, w)
    before = history(w, AS_OF)[2]
    Shop(w).erase(ERASED)
    _, series, after = history(w, AS_OF)
    assert counts["erased"] > 0
    assert after["resolved_searches"] == before["resolved_searches"] - counts["erased"]
    assert weeks(series, "DRILL", range(OUT[1], OUT[1] + 1)).iloc[0]["searched"] == 0


@pytest.mark.slow  # a statsforecast run through the CLI (~30-60 s on a loaded machine)
def test_demand_cli_reports_the_resolved_searches(shop, tmp_path):
    work, counts = shop
    out = tmp_path / "demand.jsonl"
    proc = ok(run("insights", "demand", "--workdir", str(work), "--as-of", AS_OF, "--out", str(out)))
    assert (
        f"free-text searches: {counts['naming']:,} of" in proc.stdout
        and "resolved to 1 product" in proc.stdout
    ), proc.stdout
    drill = [json.loads(x) for x in out.read_text().splitlines() if '"DRILL"' in x]
    assert len(drill) == 13 and all(r["units"] > 0 for r in drill)
    rep = ok(run("report", "demand", "--workdir", str(work), "--as-of", AS_OF, "--json"))
    m = json.loads(rep.stdout)["model"]["free_text_searches"]
    assert m["resolved_searches"] == counts["naming"] and m["in_censored_weeks"] == counts["naming_out"]
    assert m["censored_weeks_with_searches"] == len(OUT)
