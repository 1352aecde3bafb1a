"""Re-processing quarantined rows as they are (after a catalog or contract change) releases what
passes now, keeps what fails open, and leaves alone what re-processing cannot fix: a duplicate
key's losing row (it would replace the row the contract kept) and a line the reader could not
split (it has no fields)."""

from __future__ import annotations

from pathlib import Path

from shelfwise.governance import Ingestor, Quarantine
from shelfwise.governance._reprocess import reprocess_rows
from shelfwise.storage import Warehouse
from tests.conftest import curated_rows


def test_reprocessing_as_they_are_keeps_the_winning_rows_and_the_open_queue(tmp_path: Path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text(
        "product_id,title,price\n"
        "P1,Red Shoe,9.99\n"  # loses to the later P1: duplicate_key
        "P1,Red Shoe,8.99\n"
        'P2,"Blue Shoe,12.00\n'  # an unclosed quote: malformed_row
        "P3,Green Shoe,-5\n"  # out_of_range, fails again as it is
    )
    work = tmp_path / "w"
    Ingestor(work).run(d)
    before = {
        r["quarantine_id"]: r["reason"] for r in Quarantine(work).list("products", status="open", limit=None)
    }
    assert sorted(before.values()) == ["duplicate_key", "malformed_row", "out_of_range"], before
    res = reprocess_rows(work, "products", None)
    assert (res["retried"], res["released"], res["still_quarantined"], res["skipped"]) == (1, 0, 1, 2)
    # the kept row is still the last one delivered
    assert curated_rows(work, "SELECT price FROM curated.products WHERE product_id = 'P1'") == [(8.99,)]
    open_rows = Quarantine(work).list("products", status="open", limit=None)
    assert sorted(r["reason"] for r in open_rows) == ["duplicate_key", "malformed_row", "out_of_range"]
    line = next(r for r in open_rows if r["reason"] == "malformed_row")
    assert "Blue Shoe" in (line["raw"] or {}).get("line", ""), line  # its text is still there
    # the row that failed again is a new open row, named by where it came from (it named the
    # re-processing's temporary file, deleted afterwards, and that file's line)
    again = next(r for r in open_rows if r["reason"] == "out_of_range")
    assert again["quarantine_id"] not in before and again["source_file"] == str(d / "products.csv"), again
    assert again["source_line"] == 5, again


def test_an_exact_duplicate_is_left_open_when_reprocessed_as_it_is(tmp_path: Path):
    """An exact duplicate re-processed as it is was a duplicate of the curated row again, and came
    back `redelivered`: out of the open queue, though nobody had sent it again or decided."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n"
        "u1,P1,view,2026-01-01T10:00:00Z\nu1,P1,view,2026-01-01T10:00:00Z\nu2,P1,view,yesterday\n"
    )
    work = tmp_path / "w"
    Ingestor(work).run(d)
    res = reprocess_rows(work, "events", None)
    assert (res["retried"], res["still_quarantined"], res["skipped"]) == (1, 1, 1), res
    assert "exact duplicate" in res["skipped_reason"]
    open_rows = Quarantine(work).list("events", status="open", limit=None)
    assert sorted(r["reason"] for r in open_rows) == ["duplicate_row", "unparseable_timestamp"]
    assert Quarantine(work).list("events", status="redelivered", limit=None) == []


def test_the_governance_report_counts_the_open_quarantine_and_judges_deliveries(tmp_path: Path):
    """After a re-processing, the governance report's "quarantine by reason" is the open
    quarantine (it summed the latest load's reasons: the re-processed batch), and a table's
    quality is its latest delivery's, not the batch of rows that failed before."""
    from shelfwise.governance._catalog import catalog, governance_summary

    d = tmp_path / "d"
    d.mkdir()
    rows = [f"P{i},Shoe {i},{9 + i}.99" for i in range(40)]
    (d / "products.csv").write_text("product_id,title,price\n" + "\n".join(rows) + "\nPX,Bad,-5\nPY,,3\n")
    work = tmp_path / "w"
    Ingestor(work).run(d)
    reprocess_rows(work, "products", None)  # both fail again: a batch of 2 rows, 100% quarantined
    open_by_reason: dict[str, int] = {}
    for r in Quarantine(work).list(None, status="open", limit=None):
        open_by_reason[r["reason"]] = open_by_reason.get(r["reason"], 0) + 1
    assert (
        governance_summary(work)["quarantine_by_reason"]
        == open_by_reason
        == {
            "out_of_range": 1,
            "missing_required": 1,
        }
    )
    products = next(x for x in catalog(work)["datasets"] if x["name"] == "curated.products")
    assert products["quality"]["rows_in"] == 42 and products["quality"]["passed"]  # 2 of 42: under 5%


def test_a_fixed_product_row_keeps_what_its_file_did_not_send(tmp_path: Path):
    """Day 2's price-only products file has one bad price; the steward fixes it in the exported
    file and re-processes it: the product's price changes, its brand and category stay (the
    re-processed row names every column, empty where the file had none)."""
    import json

    day1, day2 = tmp_path / "d1", tmp_path / "d2"
    day1.mkdir()
    day2.mkdir()
    (day1 / "products.csv").write_text("product_id,title,brand,category,price\nP1,Red Shoe,Acme,Shoes,10\n")
    (day2 / "products.csv").write_text("product_id,title,price\nP1,Red Shoe,abc\n")
    work = tmp_path / "w"
    Ingestor(work).run(day1)
    Ingestor(work, mode="append").run(day2)
    out = tmp_path / "q.jsonl"
    Quarantine(work).export(out, "products")
    (rec,) = [json.loads(x) for x in out.read_text().splitlines()]
    rec["price"] = "9.50"
    out.write_text(json.dumps(rec) + "\n")
    res = reprocess_rows(work, "products", out)
    assert res["released"] == 1
    assert curated_rows(work, "SELECT brand, category, price FROM curated.products") == [
        ("Acme", "Shoes", 9.5)
    ]


def test_a_fixed_row_naming_an_erased_user_is_withheld_not_released(tmp_path: Path):
    """A steward fixes a quarantined event into one of an erased user: ingestion withholds it (the
    user asked to be forgotten), so its quarantined row is resolved `withheld`, not `released`;
    the other fixed row is released. The run's lineage reads the quarantine and the fixed file,
    not the temporary file the rows pass through."""
    import json

    from shelfwise.governance import read_lineage
    from shelfwise.governance._erase import erase_user

    d = tmp_path / "d"
    d.mkdir()
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n"
        "U1,P1,view,2026-01-01T10:00:00\n"
        "U2,P1,view,2026-01-01T11:00:00\n"
        "U3,P1,view,not a date\n"
        "U4,P1,view,not a date either\n"
    )
    work = tmp_path / "w"
    Ingestor(work).run(d)
    erase_user(work, "U2")
    out = tmp_path / "q.jsonl"
    Quarantine(work).export(out, "events")
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["user_id"] for r in recs) == ["U3", "U4"]
    for r in recs:
        r["timestamp"] = "2026-01-01T12:00:00"
        if r["user_id"] == "U4":
            r["user_id"] = "U2"  # the erased user (dated before the erasure)
    out.write_text("".join(json.dumps(r) + "\n" for r in recs))
    res = reprocess_rows(work, "events", out)
    assert (res["retried"], res["released"], res["still_quarantined"], res["withheld"]) == (2, 1, 0, 1)
    rows = {r["source_line"]: r for r in Quarantine(work).list("events", status=None, limit=None)}
    assert {n: r["status"] for n, r in rows.items()} == {4: "released", 5: "withheld"}, rows
    assert rows[5]["raw"] is None  # its fields went with the erased user's
    assert curated_rows(work, "SELECT count(*) FROM curated.events") == [(2,)]  # U1's and U3's
    run = [
        e for e in read_lineage(work) if e["run"]["runId"] == res["run_id"] and e["eventType"] == "COMPLETE"
    ]
    names = sorted(i["name"] for i in run[0]["inputs"])
    # (and the events version the released rows were added to: a re-process is an append)
    assert names == sorted(["quarantine.rows", str(out.resolve()), "curated.events"]), names
    assert not any("shelfwise-reprocess-" in n for n in names)


def test_a_delivery_that_resends_yesterday_is_not_a_failing_check(tmp_path: Path):
    """An at-least-once export re-sends part of yesterday: those rows are quarantined
    `duplicate_row` (status redelivered), but they are not bad data. The quality share is over
    the delivery's new rows: re-sending yesterday whole passes; a new row failing still counts."""
    from shelfwise.governance._catalog import catalog

    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    d1.mkdir()
    d2.mkdir()
    rows = [f"P{i},Shoe {i},{9 + i}.99" for i in range(20)]
    (d1 / "products.csv").write_text("product_id,title,price\n" + "\n".join(rows) + "\n")
    # day 2: all of day 1 again, 4 new products, one of them with a bad price
    (d2 / "products.csv").write_text(
        "product_id,title,price\n" + "\n".join(rows) + "\nQ1,Hat,5\nQ2,Cap,6\nQ3,Scarf,7\nQ4,Bad,-1\n"
    )
    work = tmp_path / "w"
    Ingestor(work).run(d1)
    rep = Ingestor(work, mode="append").run(d2)
    assert rep.tables["products"].rows_unchanged == 20 and rep.tables["products"].rows_quarantined == 21
    q = next(x for x in catalog(work)["datasets"] if x["name"] == "curated.products")["quality"]
    assert q["rows_redelivered"] == 20 and q["quarantined_share"] == 0.25 and not q["passed"]  # 1 of 4 new
    (d2 / "products.csv").write_text("product_id,title,price\n" + "\n".join(rows) + "\n")
    again = Ingestor(work, mode="append").run(d2)
    q = next(x for x in catalog(work)["datasets"] if x["name"] == "curated.products")["quality"]
    assert q["quarantined_share"] == 0.0 and q["passed"]
    # nothing new: no copy of the table as a version of its own (a model trained after it
    # learned from the same data), and the load says so
    assert again.tables["products"].curated_version == rep.tables["products"].curated_version == 2
    with Warehouse(work) as wh:
        assert [v.version for v in wh.versions() if v.table == "products"] == [1, 2]
        assert wh.sql("SELECT count(*) FROM curated.products").fetchone() == (23,)
    assert any("nothing new to curate: the curated table stays at version 2" in n for n in again.notes)


def test_a_full_load_of_a_header_only_export_keeps_the_curated_tables(tmp_path: Path):
    """A nightly export that failed leaves files with a header and no row: the full load keeps
    every curated table (it emptied them all, "passed", exit 0), says so, and a table that has
    rows is replaced as before."""
    from tests.conftest import curated_rows

    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    d1.mkdir()
    d2.mkdir()
    (d1 / "products.csv").write_text("product_id,title\nP1,Shoe\nP2,Hat\n")
    (d1 / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    (d2 / "products.csv").write_text("product_id,title\nP3,Scarf\n")
    (d2 / "events.csv").write_text("user_id,product_id,event_type,timestamp\n")
    work = tmp_path / "w"
    Ingestor(work).run(d1)
    rep = Ingestor(work).run(d2)
    assert curated_rows(work, "SELECT count(*) FROM curated.events") == [(1,)]
    assert curated_rows(work, "SELECT product_id FROM curated.products") == [("P3",)]  # replaced
    assert any("events.csv: no rows: curated.events keeps its 1 rows" in n for n in rep.notes), rep.notes


def test_resent_bad_rows_and_resent_event_ids_are_redeliveries_not_failures(tmp_path: Path, engine=None):
    """Day 2 re-sends day 1 whole: its two bad products (quarantined before) and its events with
    their `event_id`s (curated before). Neither is a failure of day 2, nor one more open row: both
    are `redelivered`, the event ids count as unchanged rows, and the quality check passes."""
    from shelfwise.governance._catalog import catalog

    d = tmp_path / "d"
    d.mkdir()
    rows = [f"P{i},Shoe {i},{9 + i}.99" for i in range(18)] + ["PX,Bad,-5", "PY,Worse,-6"]
    (d / "products.csv").write_text("product_id,title,price\n" + "\n".join(rows) + "\n")
    events = [f"E{i},U{i % 5},P{i % 18},view,2026-01-01T10:{i:02d}:00Z" for i in range(30)]
    (d / "events.csv").write_text(
        "event_id,user_id,product_id,event_type,timestamp\n" + "\n".join(events) + "\n"
    )
    work = tmp_path / "w"
    eng = engine(work) if engine else None
    Ingestor(work, engine=eng).run(d)
    rep = Ingestor(work, mode="append", engine=eng).run(d)
    ev, pr = rep.tables["events"], rep.tables["products"]
    assert (ev.rows_curated, ev.rows_unchanged, ev.rows_redelivered) == (0, 30, 30)
    assert (pr.rows_quarantined, pr.rows_redelivered) == (20, 20)
    assert {r["status"] for r in Quarantine(work).list("events", status=None, limit=None)} == {"redelivered"}
    assert len(Quarantine(work).list("products", status="open", limit=None)) == 2  # day 1's, once
    quality = {x["name"]: x["quality"] for x in catalog(work)["datasets"]}
    assert quality["curated.events"]["passed"] and quality["curated.events"]["quarantined_share"] == 0.0
    assert quality["curated.products"]["passed"], quality["curated.products"]


def test_an_event_sent_twice_in_one_load_is_a_redelivery_not_an_open_fault(tmp_path: Path, engine=None):
    """An exact copy of an event with its event_id in the same load (two server processes both
    accepted a client's retry and one absorb reads both; an export that re-sends an event in
    the same file) is `redelivered`; an event_id reused for another event stays an open fault,
    as does an exact copy of an event without an id (nothing says it is the same event)."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title\nP1,Red Shoe\nP2,Blue Shoe\n")
    events = [f"E{i},U{i},P1,view,2026-01-01T10:0{i}:00Z" for i in range(5)]
    events += events[:3]  # sent twice
    events += ["E4,U9,P2,view,2026-01-01T11:00:00Z"]  # E4 again, another event
    events += [",U7,P2,view,2026-01-01T12:00:00Z"] * 2  # no id: a double row
    events += ["E8,U8,P404,view,2026-01-01T13:00:00Z"] * 2  # a bad event sent twice: one fault
    events += ["E9,U8,P1,hover,2026-01-01T14:00:00Z"] * 2  # ... a row check's fault too
    (d / "events.csv").write_text(
        "event_id,user_id,product_id,event_type,timestamp\n" + "\n".join(events) + "\n"
    )
    work = tmp_path / "w"
    ev = Ingestor(work, engine=engine(work) if engine else None).run(d).tables["events"]
    assert (ev.rows_curated, ev.rows_quarantined, ev.rows_redelivered) == (6, 9, 5)
    rows = Quarantine(work).list("events", status=None, limit=None)
    assert sorted((r["source_line"], r["status"]) for r in rows) == [
        (7, "redelivered"),
        (8, "redelivered"),
        (9, "redelivered"),
        (10, "open"),
        (12, "open"),
        (13, "open"),
        (14, "redelivered"),
        (15, "open"),
        (16, "redelivered"),
    ]


def test_an_id_the_server_gave_does_not_make_a_retried_event_another(tmp_path: Path, engine=None):
    """A client's retry of a batch without event_ids is spooled twice and absorbed under two
    server ids (`spool:<segment>:<line>`): the copies are one event, as two equal rows of a file
    are (an open `duplicate_row` within a load, a re-delivery of a curated event in a later
    one). Two events with distinct client ids stay two events."""
    head = "event_id,user_id,product_id,event_type,timestamp\n"
    days = [tmp_path / "d1", tmp_path / "d2"]
    for d in days:
        d.mkdir()
        (d / "products.csv").write_text("product_id,title\nP1,Red Shoe\n")
    (days[0] / "events.csv").write_text(
        head
        + "spool:s1:1,U1,P1,view,2026-01-01T10:00:00Z\n"
        + "spool:s1:2,U1,P1,view,2026-01-01T10:00:00Z\n"  # the retry, in the same absorb
        + "c-1,U2,P1,view,2026-01-01T10:00:00Z\n"
        + "c-2,U2,P1,view,2026-01-01T10:00:00Z\n"  # the client says: another event
    )
    (days[1] / "events.csv").write_text(
        head + "redis:9-0,U1,P1,view,2026-01-01T10:00:00Z\n"
    )  # a later absorb
    work = tmp_path / "w"
    eng = engine(work) if engine else None
    first = Ingestor(work, engine=eng, mode="append").run(days[0]).tables["events"]
    assert (first.rows_curated, first.reasons) == (3, {"duplicate_row": 1})
    assert [r["status"] for r in Quarantine(work).list("events", status=None, limit=None)] == ["open"]
    second = Ingestor(work, engine=eng, mode="append").run(days[1]).tables["events"]
    assert (second.rows_curated, second.rows_redelivered) == (0, 1)


def test_a_row_fixed_in_two_tries_is_a_redelivery_when_its_file_comes_again(tmp_path: Path):
    """A steward's first fix of a bad event type (`teleport` -> `teleport2`) failed again and its
    second (`rating`) was released; the shop re-sent the same file and the original row came back
    as a new open fault ("1 of 1 new rows quarantined", the check FAILING): the row its first fix
    superseded was no longer the quarantine's. A row superseded by a re-processing still is."""
    import json

    d, work = tmp_path / "d", tmp_path / "w"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title\nP1,Chair\n")
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2026-01-01T10:00:00Z\n"
        "U2,P1,teleport,2026-01-01T11:00:00Z\n"
    )
    Ingestor(work).run(d)
    for value in ("teleport2", "rating"):
        out = tmp_path / f"{value}.jsonl"
        Quarantine(work).export(out, "events")
        (rec,) = [json.loads(x) for x in out.read_text().splitlines()]
        rec["event_type"] = value
        out.write_text(json.dumps(rec) + "\n")
        reprocess_rows(work, "events", out)
    assert Quarantine(work).list("events", status="open", limit=None) == []
    rep = Ingestor(work, mode="append").run(d)
    ev = rep.tables["events"]
    assert (ev.rows_quarantined, ev.rows_redelivered) == (2, 2), ev  # (the view: curated already)
    assert Quarantine(work).list("events", status="open", limit=None) == []
    assert not any("FAILING" in n for n in rep.notes), rep.notes


def test_a_full_snapshot_that_curates_fewer_rows_than_the_table_held_warns(tmp_path: Path):
    """`train --data DIR` re-run after an `--append` delivery replaced the curated events with
    DIR's alone, and no line said a day's rows had left the table. The load warns (printed by
    `ingest` and `train --data`), naming the version that keeps them; appends never do."""
    from shelfwise.reporting import summary_lines

    d1, d2, work = tmp_path / "d1", tmp_path / "d2", tmp_path / "w"
    for d, day in ((d1, "01"), (d2, "02")):
        d.mkdir()
        (d / "products.csv").write_text("product_id,title\nP1,Chair\n")
        (d / "events.csv").write_text(
            "user_id,product_id,event_type,timestamp\n"
            + "".join(f"U{i},P1,view,2026-01-{day}T10:0{i}:00Z\n" for i in range(3))
        )
    assert Ingestor(work).run(d1).warnings == []
    assert Ingestor(work, mode="append").run(d2).warnings == []
    rep = Ingestor(work).run(d1)
    (warning,) = rep.warnings
    assert "events: this full snapshot curated 3 rows where the table held 6" in warning
    assert "version 2 keeps them" in warning and "--append" in warning
    assert any(line.startswith("  warning: events: this full snapshot") for line in summary_lines(rep))


def test_a_full_snapshot_that_sends_a_row_a_failed_fix_left_open_keeps_it_open(tmp_path: Path):
    """A first fix failed (the row superseded by the fix's open row), then a full snapshot sent
    the original bad row again: its copy was counted a redelivery of the superseded row while
    the snapshot superseded the fix's row, and no open row was left of a fault in the file
    (the review's). In a full snapshot the copy is open again; in an append it is a redelivery."""
    import json

    d, work = tmp_path / "d", tmp_path / "w"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title\nP1,Chair\n")
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2026-01-01T10:00:00Z\n"
        "U2,P1,teleport,2026-01-01T11:00:00Z\n"
    )
    Ingestor(work).run(d)
    out = tmp_path / "fix.jsonl"
    Quarantine(work).export(out, "events")
    (rec,) = [json.loads(x) for x in out.read_text().splitlines()]
    rec["event_type"] = "teleport2"
    out.write_text(json.dumps(rec) + "\n")
    reprocess_rows(work, "events", out)
    Ingestor(work).run(d)  # a full snapshot
    open_rows = Quarantine(work).list("events", status="open", limit=None)
    assert [r["raw"]["event_type"] for r in open_rows] == ["teleport"], open_rows
