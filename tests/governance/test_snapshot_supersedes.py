"""A full snapshot replaces its table and what earlier loads left open in the quarantine: a
corrected re-export left its 300 fixed rows "open" for ever (while the same load had curated
them). A bad row the snapshot sends again stays open once; appends supersede nothing."""

from __future__ import annotations

from pathlib import Path

from shelfwise import Shop
from shelfwise.governance import Quarantine


def _write(data: Path, kinds: list[str], day: int = 1) -> None:
    data.mkdir(exist_ok=True)
    (data / "products.csv").write_text("product_id,title\np1,Hat\np2,Scarf\n")
    rows = "".join(f"u{i},p1,{k},2024-02-0{day}T10:{i:02d}:00\n" for i, k in enumerate(kinds))
    (data / "events.csv").write_text("user_id,product_id,event_type,timestamp\n" + rows)


def test_a_corrected_snapshot_supersedes_the_rows_it_fixed_and_keeps_one_open_copy(tmp_path):
    data, work = tmp_path / "d", tmp_path / "w"
    _write(data, ["view", "borrowed", "borrowed", "nonsense"])
    Shop(work).ingest(data)
    q = Quarantine(work)
    assert len(q.list("events", None, "open", limit=None)) == 3
    _write(
        data, ["view", "purchase", "purchase", "nonsense"]
    )  # two fixed (borrowed: no event type), one still bad
    rep = Shop(work).ingest(data)
    assert rep.tables["events"].rows_curated == 3
    still = q.list("events", None, "open", limit=None)
    assert [r["raw"]["event_type"] for r in still] == ["nonsense"] and len(still) == 1
    superseded = q.list("events", None, "superseded", limit=None)
    assert sorted(r["raw"]["event_type"] for r in superseded) == ["borrowed", "borrowed"]
    again = q.list("events", None, "redelivered", limit=None)  # its copy in the new load
    assert [r["raw"]["event_type"] for r in again] == ["nonsense"]
    # an append (a daily delivery) adds to the table: it supersedes nothing
    day2 = tmp_path / "d2"
    _write(day2, ["view", "borrowed"], day=2)
    Shop(work).ingest(day2, append=True)
    assert len(q.list("events", None, "open", limit=None)) == 1 + 1  # nonsense, and the new borrowed


def test_a_bad_row_dropped_then_sent_again_is_open_and_served_rejections_stay(tmp_path):
    """(From a review.) A bad row a snapshot dropped (superseded) and a later one sends again was
    filed as a copy of it (`redelivered`), leaving nothing open to fix; it is open again. A full
    events snapshot does not supersede the served events the server rejected (never the
    export's); the load says how many rows it superseded."""
    import duckdb

    data, work = tmp_path / "d", tmp_path / "w"
    _write(data, ["view", "nonsense"])
    Shop(work).ingest(data)
    q = Quarantine(work)
    # a served event the server rejected, as the absorb quarantines it
    con = duckdb.connect(str(work / "warehouse.duckdb"))
    con.execute(
        """INSERT INTO quarantine.rows SELECT nextval('quarantine.qid_seq'), 'absorb-run', 'events',
           'http:server-1', 1, 'invalid_value', ['invalid_value'], 'event_type: teleport',
           '{"user_id": "u9", "event_type": "teleport"}'::JSON, 'open', now()::TIMESTAMP, NULL"""
    )
    con.close()
    _write(data, ["view"])  # dropped
    rep = Shop(work).ingest(data)
    assert any("1 quarantined row(s) of earlier loads superseded" in n for n in rep.notes), rep.notes
    open_rows = q.list("events", None, "open", limit=None)
    assert [r["source_file"] for r in open_rows] == ["http:server-1"]  # the server's stays open
    _write(data, ["view", "nonsense"])  # back
    Shop(work).ingest(data)
    again = q.list("events", None, "open", limit=None)
    assert sorted(r["raw"]["event_type"] for r in again) == ["nonsense", "teleport"]


def test_a_malformed_line_sent_again_is_open_once(tmp_path):
    """A line that never became a row (a quote that never closes) loaded twice was open twice,
    and the second load's check counted it as a new failure: its copy is `redelivered`, as a
    re-sent bad row's is, in a snapshot and in an append."""
    data, work = tmp_path / "d", tmp_path / "w"
    _write(data, ["view", "view"])
    with open(data / "events.csv", "a") as fh:
        fh.write('u9,"p1,view,2024-02-01T11:00:00\n')  # (its quote never closes)
    Shop(work).ingest(data)
    q = Quarantine(work)
    assert [r["reason"] for r in q.list("events", None, "open", limit=None)] == ["malformed_row"]
    for append in (False, True):
        rep = Shop(work).ingest(data, append=append)
        ev = rep.tables["events"]
        assert len(q.list("events", None, "open", limit=None)) == 1, append
        assert ev.rows_redelivered >= 1 and ev.check().failed == 0, (append, ev)
