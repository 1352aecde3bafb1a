"""A run reads and checks every table's file before its transaction (DuckDB reads rows written
inside an open transaction on one thread: the checks of a 2M-row events file ran at half
speed); everything it writes to the warehouse is written inside it, so a failure anywhere
still publishes nothing."""

from __future__ import annotations

import pytest

from shelfwise.governance import Ingestor, _ingest
from shelfwise.governance._load_rows import check_rows
from shelfwise.governance._load_sets import check_sets
from tests.conftest import curated_rows


def _delivery(tmp_path):
    """Products with a bad row, users, and a `;` events file writing day-first dates and decimal
    commas, with a line the CSV reader cannot split: every kind of write the first stages used
    to make (quarantined lines, remembered date order and decimal mark)."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title\nP1,Red Shoe\nP2,\n")
    (d / "users.csv").write_text("user_id,Tier\nU1,gold\n")
    (d / "events.csv").write_text(
        "user_id;product_id;event_type;timestamp;value\n"
        "U1;P1;purchase;25/01/2024 10:00;12,99\n"
        "U1;P1;view;26/01/2024 10:00;\n"
        "U1;P1;view\n"
    )
    return d


def _tables(work, schema: str) -> list[str]:
    return [
        r[0]
        for r in curated_rows(
            work, f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'"
        )
    ]


def _rows(work, table: str) -> int:
    schema, name = table.split(".")
    if name not in _tables(work, schema):
        return 0
    return int(curated_rows(work, f"SELECT count(*) FROM {table}")[0][0])


def test_a_failure_after_the_files_are_read_leaves_nothing_of_the_run(tmp_path, monkeypatch):
    """The events table's set checks (in the transaction) fail after every table was read and
    checked: no remembered date order or decimal mark, no raw, quarantine or curated row, no
    version of any table of the run."""

    def failing(st):
        if st.name == "events":
            raise RuntimeError("injected")
        check_sets(st)

    stages = tuple((n, failing if f is check_sets else f) for n, f in _ingest.STAGES["duckdb"])
    monkeypatch.setitem(_ingest.STAGES, "duckdb", stages)
    d, work = _delivery(tmp_path), tmp_path / "w"
    with pytest.raises(RuntimeError, match="injected"):
        Ingestor(work).run(d)
    for table in ("meta.date_orders", "meta.number_marks", "meta.raw_loads", "meta.table_versions"):
        assert _rows(work, table) == 0, table
    assert _rows(work, "quarantine.rows") == 0
    assert [t for t in _tables(work, "raw") if _rows(work, f"raw.{t}")] == []
    assert _tables(work, "curated") == []
    assert curated_rows(work, "SELECT status FROM meta.runs") == [("FAIL",)]
    # and the same delivery loads whole afterwards
    monkeypatch.undo()
    report = Ingestor(work).run(d)
    assert report.tables["events"].rows_quarantined == 1


def test_the_files_are_read_and_checked_before_the_transaction_and_stored_inside_it(tmp_path, monkeypatch):
    """Every table's row checks run outside the run's transaction (on committed temp tables, read
    in parallel); its later stages inside it."""
    seen: list[tuple[str, str, bool]] = []

    def watched(stage):
        def run(st):
            seen.append((st.name, stage.__name__, st.wh.in_transaction))
            stage(st)

        run.__name__ = stage.__name__
        return run

    wrapped = {check_rows: watched(check_rows), check_sets: watched(check_sets)}
    stages = tuple((n, wrapped.get(f, f)) for n, f in _ingest.STAGES["duckdb"])
    monkeypatch.setitem(_ingest.STAGES, "duckdb", stages)
    before = getattr(_ingest, "BEFORE_TRANSACTION", frozenset())
    monkeypatch.setattr(_ingest, "BEFORE_TRANSACTION", before | {wrapped[check_rows]}, raising=False)
    Ingestor(tmp_path / "w").run(_delivery(tmp_path))
    tables = ["products", "users", "events"]
    assert seen == [(t, "check_rows", False) for t in tables] + [(t, "check_sets", True) for t in tables]


def test_the_deferred_writes_are_made_when_the_run_succeeds(tmp_path):
    """The date order and decimal mark the events file showed are remembered, its unreadable
    line and the bad product quarantined, under the run (written in its transaction)."""
    work = tmp_path / "w"
    report = Ingestor(work).run(_delivery(tmp_path))
    run = report.run_id
    assert curated_rows(work, "SELECT table_name, day_first, run_id, how FROM meta.date_orders") == [
        ("events", True, run, "shown")
    ]
    assert curated_rows(work, "SELECT table_name, decimal_comma, run_id FROM meta.number_marks") == [
        ("events", True, run)
    ]
    got = curated_rows(
        work, "SELECT table_name, reason, source_line, run_id FROM quarantine.rows ORDER BY 1, 3"
    )
    assert got == [("events", "malformed_row", 4, run), ("products", "missing_required", 3, run)]
    assert curated_rows(work, "SELECT value FROM curated.events ORDER BY timestamp") == [(12.99,), (None,)]
    assert curated_rows(work, "SELECT table_name, load_id FROM meta.raw_loads ORDER BY 2") == [
        ("products", 1),
        ("users", 2),
        ("events", 3),
    ]
    assert curated_rows(work, "SELECT count(*) FROM raw.events WHERE _load = 3") == [(2,)]
