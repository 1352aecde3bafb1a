"""The catalog and the governance report (JSON through the CLI; the HTML page in a real headless
Chromium)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.test_cli import sw


@pytest.fixture(scope="module")
def work(demo_ingested, tmp_path_factory) -> Path:
    src, _ = demo_ingested
    dst = tmp_path_factory.mktemp("catalog") / "w"
    shutil.copytree(src, dst)
    return dst


def test_catalog_lists_owners_classification_quality_and_lineage(work):
    cat = json.loads(sw("catalog", "--workdir", str(work), "--json").stdout)
    by_name = {d["name"]: d for d in cat["datasets"]}
    assert {"curated.events", "curated.products"} <= set(by_name)
    ev = by_name["curated.events"]
    assert ev["owner"] and ev["steward"] and ev["classification"]["user_id"] == "personal"
    assert ev["rows"] > 0 and ev["freshness_hours"] >= 0 and ev["contract_version"] == ev["contract_in_force"]
    assert ev["quality"]["rows_in"] == ev["rows"] + ev["quality"]["rows_quarantined"]
    assert any(r for r in ev["quality"]["reasons"])  # the demo's injected defects
    assert ev["lineage"]["upstream"] and ev["lineage"]["upstream"][0].endswith("events.csv")
    assert {c["name"] for c in cat["contracts"]} >= {"events", "products"}


def test_governance_report_json_and_html_in_a_browser(work, tmp_path, browser):
    out = json.loads(sw("report", "governance", "--workdir", str(work), "--json").stdout)
    assert out["quarantine_by_reason"] and out["audit"]["intact"] is True
    assert out["owners_with_failing_checks"]  # the demo shop's dirty catalog fails its check
    page = work / "reports" / "governance.html"
    assert page.exists()
    pg = browser.new_page()
    pg.goto(page.as_uri())
    assert pg.title() == "shelfwise governance"
    assert pg.locator("#card-audit b").inner_text() == "intact"
    assert int(pg.locator("#card-failing b").inner_text()) == len(out["owners_with_failing_checks"])
    assert pg.locator("svg").count() >= 2  # the trend and the reasons charts rendered
    box = pg.locator("svg").first.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100
    pg.screenshot(path=str(tmp_path / "governance.png"), full_page=True)
    pg.close()
    assert (tmp_path / "governance.png").stat().st_size > 10_000


def test_retention_deletes_what_is_older_than_its_period_and_is_audited(demo_ingested, tmp_path):
    import duckdb

    src, _ = demo_ingested
    w = tmp_path / "w"
    shutil.copytree(src, w)
    con = duckdb.connect(str(w / "warehouse.duckdb"), read_only=True)
    lo, hi, n0 = con.sql("SELECT min(timestamp), max(timestamp), count(*) FROM curated.events").fetchone()
    con.close()
    days = max((datetime.now(UTC).replace(tzinfo=None) - hi).days + 30, 1)  # keeps the newest month or so
    (w / "config").mkdir(exist_ok=True)
    (w / "config" / "retention.json").write_text(json.dumps({"events_days": days, "quarantine_days": 0}))
    rep = json.loads(sw("retention", "enforce", "--workdir", str(w), "--json").stdout)
    assert (
        rep["deleted"]["quarantine.rows"] > 0
        and sum(v for k, v in rep["deleted"].items() if k.startswith("curated.events")) > 0
    )
    con = duckdb.connect(str(w / "warehouse.duckdb"), read_only=True)
    lo2, _, n1 = con.sql("SELECT min(timestamp), max(timestamp), count(*) FROM curated.events").fetchone()
    q = con.sql("SELECT count(*) FROM quarantine.rows").fetchone()[0]
    recorded = con.sql(
        "SELECT row_count FROM meta.table_versions WHERE table_name = 'events' ORDER BY version DESC LIMIT 1"
    ).fetchone()[0]
    con.close()
    cutoff = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=days)
    assert 0 < n1 < n0 and lo2 >= cutoff - timedelta(seconds=5) and q == 0
    # the version's recorded size is what it holds now (the catalog and the next bundle say it)
    assert recorded == n1
    catalog = json.loads(sw("catalog", "--workdir", str(w), "--json").stdout)
    events = next(d for d in catalog["datasets"] if d["name"] == "curated.events")
    assert events["rows"] == n1, events
    audit = [json.loads(x) for x in (w / "audit" / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["action"] == "retention.enforce"
    (w / "config" / "retention.json").write_text(json.dumps({"events_days": "forever"}))
    assert sw("retention", "enforce", "--workdir", str(w), check=False).returncode == 2


def test_the_catalog_classifies_the_columns_a_load_kept_beyond_the_contract(tmp_path):
    """A users file's extra columns (MovieLens's age, gender, occupation) are curated as `x_...`
    and the catalog classifies them too (a personal one, a nickname, is never curated)."""
    from shelfwise.governance import ingest
    from shelfwise.governance._catalog import catalog

    data = tmp_path / "data"
    data.mkdir()
    (data / "users.csv").write_text(
        "user_id,age,gender,occupation,nickname\nu1,25,F,writer,kit\nu2,41,M,doctor,bo\n"
    )
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nu1,p1,view,2026-01-01T10:00:00Z\n"
    )
    ingest(data, tmp_path / "w")
    users = {d["name"]: d for d in catalog(tmp_path / "w")["datasets"]}["curated.users"]
    got = {c: k for c, k in users["classification"].items() if c.startswith("x_")}
    assert got == {"x_age": "internal", "x_gender": "internal", "x_occupation": "internal"}
    assert users["classification"]["user_id"] == "personal"
    # a person's consent choices are not public (they read "public")
    assert users["classification"]["consent_marketing"] == "internal"
    assert users["classification"]["consent_personalization"] == "internal"


def test_retention_ages_a_raw_row_whose_time_cannot_be_read_from_its_load(tmp_path):
    """Raw rows whose timestamp is no time ("yesterday") were never old enough to go: kept for
    ever with the shop's user ids. They age from the load that brought them."""
    import duckdb

    from shelfwise.governance import ingest
    from shelfwise.governance._retention import enforce_retention

    data, w = tmp_path / "data", tmp_path / "w"
    data.mkdir()
    now = datetime.now(UTC)
    (data / "events.csv").write_text(
        f"user_id,product_id,event_type,timestamp\nC1,p1,view,{now:%Y-%m-%dT%H:%M:%S}\nC2,p1,view,yesterday\n"
    )
    ingest(data, w)
    (w / "config").mkdir(exist_ok=True)
    (w / "config" / "retention.json").write_text(json.dumps({"events_days": 5}))
    enforce_retention(w)  # loaded just now: both stay

    def raw_users() -> list[str]:
        con = duckdb.connect(str(w / "warehouse.duckdb"), read_only=True)
        try:
            return sorted(r[0] for r in con.sql("SELECT user_id FROM raw.events").fetchall())
        finally:
            con.close()

    assert raw_users() == ["C1", "C2"]
    con = duckdb.connect(str(w / "warehouse.duckdb"))
    con.execute("UPDATE meta.raw_loads SET loaded_at = loaded_at - INTERVAL 30 DAY")  # loaded a month ago
    con.close()
    enforce_retention(w)
    assert raw_users() == ["C1"]  # (C1's own time is recent: it stays)
