"""A re-sent export never brings back what the retention policy took away: with `events_days`
set, events dated before the cutoff are withheld by every load (valid or not: no copy in raw,
curated or quarantine), counted in the report (`withheld: past_retention`) and said in a note;
rows in = curated + quarantined + withheld. Also run on Spark (tests/storage/test_spark_parity)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shelfwise.governance import Ingestor
from shelfwise.governance._retention import enforce_retention
from tests.conftest import curated_rows

RECENT = (datetime.now(UTC) - timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
EVENTS = (
    "user_id,product_id,event_type,timestamp\n"
    "U1,P1,view,2015-01-05T10:00:00Z\n"  # older than the policy
    "U1,P1,teleport,2015-01-06T10:00:00Z\n"  # older and invalid: withheld, not quarantined
    f"U2,P1,view,{RECENT}\n"
    "U3,P1,view,not a date\n"  # undated: judged by its load (now), quarantined as usual
    "U4,P1,view,1970-01-01T00:00:00Z\n"  # implausible (before 1990): a broken row, quarantined
)


def _shop(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "products.csv").write_text("product_id,title\nP1,kettle\n")
    (folder / "events.csv").write_text(EVENTS)
    return folder


def test_events_past_the_retention_policy_never_come_back(tmp_path: Path, engine=None):
    make = (lambda work: engine(work)) if engine else (lambda work: None)
    work = tmp_path / "w"
    first = Ingestor(work, engine=make(work)).run(_shop(tmp_path / "d1"))
    assert first.tables["events"].rows_curated == 2 and first.tables["events"].rows_withheld == 0
    (work / "config").mkdir(exist_ok=True)
    (work / "config" / "retention.json").write_text(json.dumps({"events_days": 365}))
    enforce_retention(work)
    assert curated_rows(work, "SELECT count(*) FROM curated.events") == [(1,)]
    # the quarantined copy of an old event (its shop id as received) goes with it; an undated
    # or implausibly dated one ages by `quarantine_days`
    quarantined = (
        f"SELECT count(*) FROM quarantine.rows WHERE run_id = '{first.run_id}' AND raw::VARCHAR LIKE "
    )
    assert curated_rows(work, quarantined + "'%2015-01%'") == [(0,)]
    assert curated_rows(work, quarantined + "'%not a date%'") == [(1,)]
    assert curated_rows(work, quarantined + "'%1970-01-01%'") == [(1,)]

    # the same export sent again as a delivery: the old rows are withheld, the new one is known
    again = Ingestor(work, engine=make(work), mode="append").run(_shop(tmp_path / "d2"))
    t = again.tables["events"]
    assert (t.rows_in, t.rows_withheld, t.withheld) == (5, 2, {"past_retention": 2})
    assert t.rows_curated == 0 and t.rows_in == t.rows_curated + t.rows_quarantined + t.rows_withheld
    assert t.balanced and t.contract_check == "passed"
    assert any("2 row(s) dated before" in n and "events_days" in n for n in again.notes), again.notes
    assert curated_rows(work, "SELECT count(*) FROM curated.events WHERE \"timestamp\" < '2020-01-01'") == [
        (0,)
    ]
    # nowhere else either: not in raw as received again, not in the quarantine
    assert curated_rows(
        work, "SELECT count(*) FROM raw.events WHERE \"timestamp\" LIKE '2015%' AND _load > 1"
    ) == [(0,)]
    in_quarantine = f"SELECT count(*) FROM quarantine.rows WHERE run_id = '{again.run_id}'"
    assert curated_rows(work, in_quarantine + " AND raw::VARCHAR LIKE '%2015-01%'") == [(0,)]
    assert curated_rows(work, in_quarantine + " AND raw::VARCHAR LIKE '%not a date%'") == [(1,)]
    assert curated_rows(work, in_quarantine + " AND raw::VARCHAR LIKE '%1970-01-01%'") == [(1,)]

    # a full load of the same file: the policy holds for snapshots too
    full = Ingestor(work, engine=make(work)).run(_shop(tmp_path / "d3"))
    assert full.tables["events"].rows_withheld == 2
    assert curated_rows(work, "SELECT count(*) FROM curated.events") == [(1,)]


def test_without_a_policy_old_events_are_kept(tmp_path: Path):
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path / "d"))
    assert report.tables["events"].rows_curated == 2 and report.tables["events"].rows_withheld == 0


def test_old_curated_versions_are_dropped_but_what_a_bundle_learned_from(tmp_path: Path):
    """Every delivery (and a server's absorb every 30 s) published a full copy of the events
    table as a new version, kept for ever: versions beyond the last `curated_versions_kept` are
    dropped, but one a bundle in the workdir learned from; meta.table_versions keeps every row;
    other tables keep every version."""
    from shelfwise.governance import ingest

    data, work = tmp_path / "d", tmp_path / "w"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title\nP1,kettle\n")
    (work / "config").mkdir(parents=True)
    (work / "config" / "retention.json").write_text(json.dumps({"curated_versions_kept": 3}))
    (work / "bundles" / "20260101T000000000000Z").mkdir(parents=True)
    (work / "bundles" / "20260101T000000000000Z" / "manifest.json").write_text(
        json.dumps({"data_versions": {"events": {"version": 2}}})
    )
    notes = []
    for day in range(1, 8):
        (data / "events.csv").write_text(
            f"user_id,product_id,event_type,timestamp\nU{day},P1,view,{RECENT}\n"
        )
        (data / "products.csv").write_text(f"product_id,title\nP1,kettle {day}\n")  # a catalog a day
        notes += ingest(data, work, append=day > 1).notes
    physical = sorted(
        r[0]
        for r in curated_rows(
            work,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'curated' "
            "AND table_name LIKE 'events__v%'",
        )
    )
    assert physical == ["events__v2", "events__v5", "events__v6", "events__v7"]
    # the catalog keeps every version (`insights demand --as-of` reads the one of a date)
    products = curated_rows(
        work,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'curated' "
        "AND table_name LIKE 'products__v%'",
    )
    assert products == [(7,)]
    assert curated_rows(work, "SELECT count(*) FROM meta.table_versions WHERE table_name = 'events'") == [
        (7,)
    ]
    assert curated_rows(work, "SELECT count(*) FROM curated.events") == [(7,)]
    assert any("1 old curated version(s) dropped (v4;" in n for n in notes), notes
