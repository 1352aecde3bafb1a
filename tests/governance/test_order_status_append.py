"""An order's latest status wins across `--append` deliveries (walk50D finding 1): an order
curated as a purchase on day 1 and re-sent refunded or cancelled on day 2 leaves the curated
purchases; one set aside on day 1 (awaiting payment) and paid on day 2 is curated."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from shelfwise.governance import Ingestor
from shelfwise.reporting import summary_lines
from tests.conftest import curated_rows

MAP = (
    '[map.events]\nuser_id = "customer"\nproduct_id = "sku"\nsession_id = "order_id"\ntimestamp = "date"\n'
    'value = "total"\n'
)
HEADER = "order_id,customer,sku,date,status,total\n"
DAY1 = HEADER + (
    "A1,u1,P1,2024-03-01 10:00,shipped,10\nA1,u1,P2,2024-03-01 10:00,shipped,20\n"
    "A2,u2,P1,2024-03-01 11:00,completed,30\nA3,u3,P2,2024-03-01 12:00,completed,40\n"
    "A4,u4,P1,2024-03-01 13:00,pending,50\n"
)
# A1 refunded, A3 cancelled (its line re-sent with the new status), A4 now paid, A5 new
DAY2 = HEADER + (
    "A1,u1,P1,2024-03-01 10:00,refunded,10\nA1,u1,P2,2024-03-01 10:00,refunded,20\n"
    "A3,u3,P2,2024-03-01 12:00,cancelled,40\nA4,u4,P1,2024-03-01 13:00,processing,50\n"
    "A5,u5,P2,2024-03-02 09:00,completed,60\n"
)


def _day(tmp_path: Path, name: str, text: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "orders.csv").write_text(text, encoding="utf-8")
    (d / "shelfwise.toml").write_text(MAP, encoding="utf-8")
    return d


def test_a_later_refund_or_cancellation_takes_the_curated_purchase_out(
    tmp_path: Path, engine: Callable[[Path], Any] | None = None
) -> None:
    """Both engines (`tests/storage/test_spark_parity.py` passes `engine`)."""
    w = tmp_path / "w"

    def ingest(mode: str) -> Ingestor:
        return Ingestor(w, mode=mode, **({"engine": engine(w)} if engine else {}))

    first = ingest("replace").run(_day(tmp_path, "day1", DAY1)).tables["events"]
    assert (first.rows_curated, first.rows_set_aside) == (4, 1)
    report = ingest("append").run(_day(tmp_path, "day2", DAY2))
    ev = report.tables["events"]
    # by each order's latest status: A2, A4 (paid now) and A5 are purchases, A1 and A3 are not
    got = curated_rows(w, "SELECT session_id, value FROM curated.events ORDER BY 1")
    assert got == [("A2", 30.0), ("A4", 50.0), ("A5", 60.0)]
    assert (ev.rows_in, ev.rows_curated, ev.rows_set_aside) == (5, 2, 3) and ev.balanced
    assert ev.rows_total == 3
    assert (ev.rows_retracted, ev.retracted) == (3, {"cancelled_order": 1, "refunded_order": 2})
    said = [x for x in report.warnings if "earlier purchase line(s)" in x]
    assert len(said) == 1 and "3 earlier purchase line(s) of 2 order(s)" in said[0] and "A1, A3" in said[0]
    assert "took out 3 earlier purchase line(s)" in "\n".join(summary_lines(report))
    # nothing dropped silently: each curated line taken out is in the quarantine, with the
    # delivery that changed it
    out = curated_rows(
        w,
        "SELECT reason, status, detail, raw->>'session_id' FROM quarantine.rows "
        "WHERE source_file LIKE 'curated:%' ORDER BY 4, 1",
    )
    assert [(r, s, o) for r, s, _, o in out] == [
        ("refunded_order", "superseded", "A1"),
        ("refunded_order", "superseded", "A1"),
        ("cancelled_order", "superseded", "A3"),
    ]
    assert all("day2" in d and "orders.csv line" in d and "taken out" in d for _, _, d, _ in out), out
    if engine is None:  # the steward's list names the curated version, no line of a file
        from tests.cli.test_cli import sw

        listed = sw("quarantine", "list", "--workdir", str(w), "--status", "superseded").stdout
        assert "events curated:events v1 [refunded_order] order A1 is refunded" in listed, listed


def test_an_append_without_a_status_change_takes_nothing_out(tmp_path: Path) -> None:
    w = tmp_path / "w"
    Ingestor(w).run(_day(tmp_path, "day1", DAY1))
    report = Ingestor(w, mode="append").run(
        _day(
            tmp_path,
            "day2",
            HEADER + "A6,u6,P1,2024-03-02 10:00,cancelled,5\nA2,u2,P1,2024-03-01 11:00,completed,30\n",
        )
    )
    ev = report.tables["events"]
    assert ev.rows_retracted == 0 and ev.balanced and ev.rows_total == 4
    assert not [x for x in report.warnings if "earlier purchase line(s)" in x]


def test_an_old_delivery_run_again_changes_no_order(
    tmp_path: Path, engine: Callable[[Path], Any] | None = None
) -> None:
    """Day 1 re-run after day 2 (a nightly job run twice; both engines, `test_spark_parity`
    passes `engine`): its pending line of A4, which day 2 paid, took A4's curated paid line out,
    and its shipped lines of A1, since refunded, were curated again (the lines day 2 took out
    were no longer curated to be recognised): the review of 5c33115... A line sent before says
    nothing new of its order, and a line taken out was delivered."""
    w = tmp_path / "w"

    def ingest(mode: str) -> Ingestor:
        return Ingestor(w, mode=mode, **({"engine": engine(w)} if engine else {}))

    ingest("replace").run(_day(tmp_path, "day1", DAY1))
    ingest("append").run(_day(tmp_path, "day2", DAY2))
    before = curated_rows(w, "SELECT session_id, value FROM curated.events ORDER BY 1")
    again = ingest("append").run(_day(tmp_path, "day1-again", DAY1)).tables["events"]
    assert curated_rows(w, "SELECT session_id, value FROM curated.events ORDER BY 1") == before
    assert before == [("A2", 30.0), ("A4", 50.0), ("A5", 60.0)]
    assert again.rows_retracted == 0 and again.rows_curated == 0 and again.balanced


def test_an_order_id_written_as_a_float_is_taken_out_too_and_an_erasure_takes_the_lines_out(
    tmp_path: Path,
) -> None:
    """`5146.0` (a dataframe library's export) is curated as `5146`: the later refund of it took
    nothing out (the review of 5c33115..). And a customer's purchase line taken out of the
    curated events (kept in the quarantine as the curated row, under the pseudonym) went
    unerased and unlisted by a subject access request."""
    from shelfwise.governance._erase import erase_user

    w = tmp_path / "w"
    day1 = HEADER + "5146.0,u1,P1,2024-03-01 10:00,shipped,10\nA2,u2,P1,2024-03-01 11:00,completed,30\n"
    day2 = HEADER + "5146.0,u1,P1,2024-03-01 10:00,refunded,10\n"
    Ingestor(w, mode="replace").run(_day(tmp_path, "day1", day1))
    ev = Ingestor(w, mode="append").run(_day(tmp_path, "day2", day2)).tables["events"]
    assert ev.rows_retracted == 1
    assert curated_rows(w, "SELECT session_id FROM curated.events") == [("A2",)]
    taken = "SELECT count(*) FROM quarantine.rows WHERE source_file LIKE 'curated:%'"
    assert curated_rows(w, taken) == [(1,)]
    erase_user(w, "u1")
    assert curated_rows(w, taken) == [(0,)]


def test_a_line_taken_out_by_a_folder_delivery_names_the_file_and_row(tmp_path: Path) -> None:
    """A delivery read from a folder of files numbers its lines part * 10**10 + line: the
    superseded purchase's detail named that internal number (`line 20000000003`), not the file
    and row a person can open."""
    w = tmp_path / "w"
    Ingestor(w).run(_day(tmp_path, "day1", DAY1))
    day2 = tmp_path / "day2"
    (day2 / "orders").mkdir(parents=True)
    (day2 / "shelfwise.toml").write_text(MAP, encoding="utf-8")
    (day2 / "orders" / "part-1.csv").write_text(HEADER + "A5,u5,P2,2024-03-02 09:00,completed,60\n")
    (day2 / "orders" / "part-2.csv").write_text(
        HEADER + "A2,u2,P1,2024-03-01 11:00,completed,30\nA3,u3,P2,2024-03-01 12:00,cancelled,40\n"
    )
    ev = Ingestor(w, mode="append").run(day2).tables["events"]
    assert ev.rows_retracted == 1
    ((detail,),) = curated_rows(w, "SELECT detail FROM quarantine.rows WHERE status = 'superseded'")
    assert f"said by {day2 / 'orders' / 'part-2.csv'} line 3 " in detail, detail
