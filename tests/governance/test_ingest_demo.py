"""Governed ingestion of the demo shop, whose injected defects are known line by line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shelfwise.governance import Quarantine, Reason, ingest, read_lineage
from shelfwise.governance._reasons import SET_ASIDE_REASONS
from tests.conftest import curated_rows, events_head


def _quarantine_by_line(workdir: Path) -> dict[tuple[str, int], str]:
    rows = Quarantine(workdir).list(status=None, limit=None)
    return {(r["table"], r["source_line"]): r["reason"] for r in rows}


def test_every_injected_defect_is_caught_with_its_reason(demo_data, demo_ingested):
    workdir, _ = demo_ingested
    manifest = json.loads((demo_data / "defects.json").read_text())["defects"]
    expected = [d for d in manifest if "line" in d]
    # every reason a file load can give is injected (unknown_field is for events posted over HTTP;
    # the rows kept aside are a Shopify export's: tests/governance/test_shopify_exports.py; a
    # stale_row is an appended delivery's: tests/governance/test_out_of_order_rows.py)
    aside = {r.value for r in SET_ASIDE_REASONS}
    assert {d["reason"] for d in expected} >= {r.value for r in Reason} - {
        "unknown_field",
        "stale_row",
    } - aside
    got = _quarantine_by_line(workdir)
    misses = [
        (d["table"], d["line"], d["reason"], got.get((d["table"], d["line"])))
        for d in expected
        if got.get((d["table"], d["line"])) != d["reason"]
    ]
    assert misses == []
    # and nothing else was quarantined: the clean rows all reach the curated layer
    assert len(got) == len(expected)


def test_nothing_is_lost(demo_ingested):
    _, report = demo_ingested
    for t in report.tables.values():
        assert t.balanced, t
        assert t.rows_in == t.rows_curated + t.rows_quarantined
        assert sum(t.reasons.values()) == t.rows_quarantined
    assert report.tables["events"].rows_in > 20_000


def test_cleaning_repairs_encoding_html_and_unicode(demo_ingested):
    workdir, report = demo_ingested
    assert report.tables["products"].transcoded_lines > 0
    titles = [r[0] for r in curated_rows(workdir, "SELECT title FROM curated.products")]
    assert not any("<" in t or "&amp;" in t for t in titles)
    assert any("USB-C" in t for t in titles)  # full-width letters folded by NFKC
    assert not any("\uff35" in t for t in titles)
    brands = {r[0] for r in curated_rows(workdir, "SELECT DISTINCT brand FROM curated.products")}
    assert brands & {"Crème Cuisine", "Nordström Tech", "Åkerlund", "Maison Rivière", "Glowé", "Dermaé"}
    texts = [r[0] for r in curated_rows(workdir, "SELECT text FROM curated.events WHERE text IS NOT NULL")]
    assert any(t.startswith(("Très", "Génial", "Produit reçu", "Sehr gut")) for t in texts)


def test_personal_data_is_pseudonymized_and_masked(demo_ingested):
    workdir, _ = demo_ingested
    users = [r[0] for r in curated_rows(workdir, "SELECT DISTINCT user_id FROM curated.events")]
    assert all(u.startswith("u_") and len(u) == 34 for u in users)
    texts = " ".join(
        r[0]
        for r in curated_rows(
            workdir, "SELECT coalesce(text, '') || ' ' || coalesce(query, '') FROM curated.events"
        )
    )
    assert "@example." not in texts
    assert "[email]" in texts and "[phone]" in texts
    cols = [r[0] for r in curated_rows(workdir, "DESCRIBE curated.users")]
    assert not {"name", "email", "phone", "x_name", "x_email", "x_phone"} & set(cols)
    assert "x_age" in cols  # non-personal profile columns stay
    # the same raw id always maps to the same pseudonym: users and events still join
    joined = curated_rows(
        workdir, "SELECT count(DISTINCT e.user_id) FROM curated.events e JOIN curated.users u USING (user_id)"
    )
    assert joined[0][0] == len(users)
    # the key lives in the secret store, not in the warehouse
    key = (workdir / "secrets" / "pseudonym.key").read_text().strip()
    assert key.encode() not in (workdir / "warehouse.duckdb").read_bytes()
    assert oct((workdir / "secrets" / "pseudonym.key").stat().st_mode & 0o777) == "0o600"


def test_lineage_events_are_written_and_parse(demo_ingested):
    workdir, report = demo_ingested
    events = [e for e in read_lineage(workdir) if e["run"]["runId"] == report.run_id]
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"]
    done = events[-1]
    ins = {i["name"].rsplit("/", 1)[-1]: i for i in done["inputs"]}
    assert ins["events.csv"]["inputFacets"]["inputStatistics"]["rowCount"] == report.tables["events"].rows_in
    assert len(ins["events.csv"]["facets"]["version"]["datasetVersion"]) == 64  # sha256 of the file
    outs = {o["name"]: o for o in done["outputs"]}
    assert (
        outs["curated.events"]["outputFacets"]["outputStatistics"]["rowCount"]
        == report.tables["events"].rows_curated
    )
    versions = curated_rows(workdir, "SELECT table_name, run_id FROM meta.table_versions")
    assert ("events", report.run_id) in versions


def test_reingest_makes_a_new_version_and_keeps_pseudonyms(demo_data, tmp_path):
    small = events_head(demo_data, tmp_path / "small", 2000)
    w = tmp_path / "w"
    r1 = ingest(small, w)
    r2 = ingest(small, w)
    assert r2.tables["events"].curated_version == r1.tables["events"].curated_version + 1
    assert r1.tables["events"].content_hash == r2.tables["events"].content_hash
    other = ingest(small, tmp_path / "other")  # another workdir has another key
    a = curated_rows(w, "SELECT min(user_id) FROM curated.events")[0][0]
    b = curated_rows(tmp_path / "other", "SELECT min(user_id) FROM curated.events")[0][0]
    assert a != b and other.tables["events"].rows_curated == r1.tables["events"].rows_curated


@pytest.mark.parametrize("reason", [r.value for r in Reason])
def test_reason_codes_have_descriptions(reason):
    assert Reason(reason).description


def test_raw_rows_name_their_load_and_old_raw_tables_still_load(demo_data, tmp_path):
    """Raw rows carry a load id; meta.raw_loads gives each load's run, file and hash. A raw
    table written before load ids existed (run id and file name in every row) takes new loads."""
    import duckdb

    small = events_head(demo_data, tmp_path / "small", 500)
    w = tmp_path / "w"
    r1 = ingest(small, w)
    loads = curated_rows(
        w, "SELECT load_id, run_id, table_name, source_file, source_sha256 FROM meta.raw_loads"
    )
    assert loads == [(1, r1.run_id, "events", str(small / "events.csv"), r1.tables["events"].source_sha256)]
    per_load = curated_rows(w, "SELECT _load, count(*) FROM raw.events GROUP BY 1")
    assert per_load == [
        (1, r1.tables["events"].rows_in - r1.tables["events"].reasons.get("malformed_row", 0))
    ]
    # the layout of earlier versions
    con = duckdb.connect(str(w / "warehouse.duckdb"))
    con.execute("ALTER TABLE raw.events DROP COLUMN _load")
    con.execute("ALTER TABLE raw.events ADD COLUMN _run_id VARCHAR DEFAULT 'old-run'")
    con.execute("ALTER TABLE raw.events ADD COLUMN _source_file VARCHAR DEFAULT 'old.csv'")
    con.execute("ALTER TABLE raw.events ALTER COLUMN _run_id DROP DEFAULT")
    con.execute("ALTER TABLE raw.events ALTER COLUMN _source_file DROP DEFAULT")
    con.execute("DELETE FROM meta.raw_loads")
    con.close()
    r2 = ingest(small, w)
    assert r2.tables["events"].balanced
    assert r2.tables["events"].rows_curated == r1.tables["events"].rows_curated
    rows = curated_rows(
        w, "SELECT _run_id, _source_file, _load, count(*) FROM raw.events GROUP BY ALL ORDER BY 3"
    )
    n = per_load[0][1]
    assert sorted(rows, key=str) == sorted([("old-run", "old.csv", None, n), (None, None, 1, n)], key=str)
