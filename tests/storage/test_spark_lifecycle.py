"""What happens to Spark-written tables after the load is what happens to DuckDB ones: the access
export (`privacy export --user`) finds a user's rows in the Parquet versions, retention's
`events_days` and `quarantine_days` rewrite or remove the Parquet files, and a delivery appended
with `--append` on Spark curates what DuckDB's append curates (re-delivered rows quarantined as
`duplicate_row`, keyed rows upserted into a new version).

One small demo shop ingested on both engines with one pseudonym key (so even the pseudonymized
ids must be equal), then one story on it: the access export, retention, then the append (the
append runs on what retention left, alike on both engines; one load instead of one per check:
a Spark load of the shop costs ~20-40 s). Slow: Spark runs ~10 jobs per table."""

from __future__ import annotations

import csv
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shelfwise.demo import generate_demo
from shelfwise.governance import Ingestor
from shelfwise.governance._privacy import SecretStore
from shelfwise.governance._retention import enforce_retention
from shelfwise.governance._subject_access import subject_access
from shelfwise.storage import SparkEngine
from tests.conftest import curated_rows
from tests.storage.conftest import skip_without_spark

pytestmark = pytest.mark.slow

skip_without_spark()


@pytest.fixture()
def shop(spark, tmp_path):
    """A small demo shop's events and products, ingested on both engines (one key)."""
    data = tmp_path / "data"
    generate_demo(data, products=60, users=30, events=1500, days=20, seed=5)
    for extra in ("queries.csv", "judgments.csv", "users.csv"):  # (fewer Spark jobs)
        (data / extra).unlink(missing_ok=True)
    duck, sprk = tmp_path / "duck", tmp_path / "spark"
    key = SecretStore(duck).pseudonym_key()
    (sprk / "secrets").mkdir(parents=True)
    (sprk / "secrets" / "pseudonym.key").write_text(key.hex())
    Ingestor(duck).run(data)
    Ingestor(sprk, engine=SparkEngine(sprk, master="local[2]")).run(data)
    return data, duck, sprk


def _events(work: Path) -> list[tuple]:
    return curated_rows(work, 'SELECT * EXCLUDE ("timestamp"), "timestamp"::TIMESTAMP FROM curated.events')


def _busiest(work: Path) -> str:
    return curated_rows(
        work,
        "SELECT user_id FROM raw.events WHERE user_id NOT LIKE 'BOT%' AND trim(user_id) <> '' "
        "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1",
    )[0][0]


def test_access_export_retention_and_append_on_spark_match_duckdb(shop, tmp_path, monkeypatch):
    data, duck, sprk = shop
    _access_export_and_retention_reach_spark_parquet(duck, sprk)
    _append_on_spark_curates_what_duckdb_appends(data, duck, sprk, tmp_path, monkeypatch)


def _access_export_and_retention_reach_spark_parquet(duck: Path, sprk: Path) -> None:
    assert _events(sprk) == _events(duck)
    raw_id = _busiest(duck)

    # the access export: the user's curated rows from the Parquet version, as DuckDB's
    docs = {w: subject_access(w, raw_id) for w in (duck, sprk)}
    d_rows, s_part = (
        docs[duck]["parts"]["curated.events@v1"]["rows"],
        docs[sprk]["parts"]["curated.events@v1"],
    )
    assert s_part["lineage"]["format"] == "parquet" and s_part["lineage"]["current"] is True
    assert len(s_part["rows"]) == len(d_rows) > 0

    def key(r: dict) -> str:
        return json.dumps({k: str(v)[:19] for k, v in r.items()}, sort_keys=True)

    assert sorted(map(key, s_part["rows"])) == sorted(map(key, d_rows))
    assert {r["user_id"] for r in s_part["rows"]} == {docs[sprk]["pseudonym"]}

    # retention: events before the median day leave both engines' versions alike
    (median,) = curated_rows(duck, 'SELECT quantile_disc("timestamp", 0.5) FROM curated.events')[0]
    for w in (duck, sprk):
        (w / "config").mkdir(exist_ok=True)
        (w / "config" / "retention.json").write_text(json.dumps({"events_days": 10, "quarantine_days": None}))
    now = (median + timedelta(days=10)).replace(tzinfo=UTC)
    out = {w: enforce_retention(w, now=now)["deleted"] for w in (duck, sprk)}
    assert out[sprk]["curated.events__v1"] == out[duck]["curated.events__v1"] > 0
    assert _events(sprk) == _events(duck)
    assert not curated_rows(sprk, f"SELECT * FROM curated.events WHERE \"timestamp\" < TIMESTAMP '{median}'")
    # the catalog's record of the version describes what its files now hold
    (count,) = curated_rows(sprk, "SELECT row_count FROM meta.table_versions WHERE table_name = 'events'")[0]
    assert count == len(_events(sprk))

    # quarantine_days: the Spark load's quarantine files go with its indexed rows
    qdir = sprk / "spark-warehouse" / "quarantine" / "events"
    assert list(qdir.glob("run=*/*.parquet"))
    for w in (duck, sprk):
        (w / "config" / "retention.json").write_text(json.dumps({"quarantine_days": 0}))
    later = datetime.now(UTC) + timedelta(days=1)
    out = {w: enforce_retention(w, now=later)["deleted"] for w in (duck, sprk)}
    assert out[sprk]["quarantine.rows"] == out[duck]["quarantine.rows"] > 0
    assert out[sprk]["quarantine.parquet"] > 0
    assert not list((sprk / "spark-warehouse" / "quarantine").glob("*/run=*"))


def _delivery(data: Path, out: Path) -> None:
    """A next day's delivery: the last 100 events again (an at-least-once export re-sends
    them), 50 new ones (earlier rows moved 40 days back: older than anything curated, so the
    appended version is out of time order, and the delivery's newest rows are re-sent ones),
    and the products with one price changed (an upsert)."""
    out.mkdir()
    with open(data / "events.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0])
    moved = []
    for r in rows[-150:-100]:
        try:
            t = datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
        except ValueError:
            continue
        moved.append({**r, "timestamp": (t - timedelta(days=40)).isoformat()})
    with open(out / "events.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fields)
        w.writeheader()
        w.writerows(rows[-100:] + moved)
    # (the demo's catalog has mis-encoded rows on purpose: two plain ones are re-sent)
    with open(data / "products.csv", newline="", encoding="utf-8", errors="replace") as fh:
        products = list(csv.DictReader(fh))
    plain = [
        p
        for p in products
        if None not in p
        and all(isinstance(v, str) and v.isascii() for v in p.values())
        and p["price"].replace(".", "").isdigit()
    ]
    with open(out / "products.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, list(products[0]))
        w.writeheader()
        w.writerows([plain[0], {**plain[1], "price": "12345.5"}])


def _append_on_spark_curates_what_duckdb_appends(
    data: Path, duck: Path, sprk: Path, tmp_path: Path, monkeypatch
) -> None:
    """A delivery appended on both engines: the same counts (new / updated / re-delivered), the
    same quarantined rows with the same reasons, details and status, the same curated rows.
    The delivery's new rows are older than anything curated and its newest rows are re-sent
    ones (the time range's edge); the Python process runs in a time zone behind UTC (Spark's
    session is UTC): a TIMESTAMP (not _NTZ) collected into Python is local time there, so the
    range's bounds are formatted by Spark and never pass through Python."""
    day2 = tmp_path / "day2"
    _delivery(data, day2)
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        reports = {
            "duckdb": Ingestor(duck, mode="append").run(day2),
            "spark": Ingestor(sprk, mode="append", engine=SparkEngine(sprk, master="local[2]")).run(day2),
        }
    finally:
        monkeypatch.undo()
        time.tzset()

    def counts(report):
        return {
            t: (r.rows_in, r.rows_curated, r.rows_quarantined, r.reasons, r.balanced)
            + (r.rows_inserted, r.rows_updated, r.rows_unchanged, r.rows_total)
            for t, r in report.tables.items()
        }

    assert counts(reports["spark"]) == counts(reports["duckdb"])
    ev = reports["duckdb"].tables["events"]
    # re-sent rows recognised, new ones added (re-sent rows day 1 held as robot traffic are new now)
    assert ev.rows_unchanged >= 40 and ev.rows_inserted >= 40
    pr = reports["duckdb"].tables["products"]
    assert (pr.rows_updated, pr.rows_unchanged) == (1, 1)

    def quarantine(work: Path):
        return sorted(
            curated_rows(
                work,
                "SELECT table_name, source_line, reason, reasons, regexp_replace(detail, ', [0-9: -]+ UTC, run [0-9a-f-]+', ''), "
                "raw::VARCHAR, status FROM quarantine.rows WHERE run_id = (SELECT max(run_id) FROM quarantine.rows)",
            ),
            key=repr,
        )

    assert quarantine(sprk) == quarantine(duck)
    assert sorted(_events(sprk), key=repr) == sorted(_events(duck), key=repr)
    for w in (duck, sprk):
        (price,) = curated_rows(w, "SELECT count(*) FROM curated.products WHERE price = 12345.5")[0]
        assert price == 1
    assert (sprk / "spark-warehouse" / "curated" / "events" / "v2").is_dir()
