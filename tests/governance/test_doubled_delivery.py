"""A day's rows appended twice to one file: the warning says it looks like a duplicated delivery
(not that the repeated purchases may be sales to give event_ids), a repeated bad row is one open
fault, and a clean re-send of the day resolves the copies' open duplicate_rows (both engines:
tests/storage/test_spark_parity.py runs `check_doubled_day` on Spark)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from shelfwise.governance import Ingestor
from tests.conftest import curated_rows

HEADER = "user_id,product_id,event_type,timestamp,value\n"


def check_doubled_day(tmp_path: Path, engine: Callable[[Path], Any] | None = None) -> None:
    work = tmp_path / "w"
    d1, dbl, d2 = tmp_path / "d1", tmp_path / "dbl", tmp_path / "d2"
    for d in (d1, dbl, d2):
        d.mkdir()
    (d1 / "products.csv").write_text("product_id,title\np1,A\np2,B\n")
    (d1 / "events.csv").write_text(HEADER + "u0,p1,view,2024-03-01T10:00:00,\n")
    day = [f"u{i},p{i % 2 + 1},view,2024-03-02T10:{i:02d}:00," for i in range(6)]
    day += ["u1,p1,purchase,2024-03-02,12", "u2,p2,purchase,2024-03-02,30", "u3,p1,view,1970-01-01T00:00:00,"]
    body = "\n".join(day) + "\n"
    (dbl / "events.csv").write_text(HEADER + body + body)
    (d2 / "events.csv").write_text(HEADER + body)
    eng = engine(work) if engine else None
    Ingestor(work, engine=eng).run(d1)
    rep = Ingestor(work, mode="append", engine=eng).run(dbl)
    said = [w for w in rep.warnings if "repeat" in w]
    assert len(said) == 1 and "delivery duplicated" in said[0] and "8 of 18 rows" in said[0]
    assert "give each row an event_id" not in said[0]
    assert curated_rows(work, "SELECT count(*) FROM curated.events") == [(9,)]
    # the bad row sent twice is one open fault, its copy counted re-sent
    open_bad = curated_rows(
        work, "SELECT count(*) FROM quarantine.rows WHERE status = 'open' AND reason <> 'duplicate_row'"
    )
    assert open_bad == [(1,)]
    Ingestor(work, mode="append", engine=eng).run(d2)
    assert curated_rows(work, "SELECT count(*) FROM curated.events") == [(9,)]
    left = curated_rows(work, "SELECT reason, count(*) FROM quarantine.rows WHERE status = 'open' GROUP BY 1")
    assert left == [("out_of_range", 1)]


def test_a_day_appended_twice_is_said_to_be_a_duplicated_delivery_and_resolved_by_a_clean_resend(tmp_path):
    check_doubled_day(tmp_path)


def test_purchases_alone_repeated_keep_the_till_advice(tmp_path):
    work = tmp_path / "w"
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title\np1,A\n")
    rows = ["u1,p1,view,2024-03-02T10:00:00,", "u1,p1,purchase,2024-03-02,12", "u1,p1,purchase,2024-03-02,12"]
    (d / "events.csv").write_text(HEADER + "\n".join(rows) + "\n")
    rep = Ingestor(work).run(d)
    said = [w for w in rep.warnings if "repeat" in w]
    assert len(said) == 1 and "give each row an event_id" in said[0] and "duplicated" not in said[0]
