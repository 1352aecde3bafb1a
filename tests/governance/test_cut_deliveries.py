"""A delivery cut off in its last field (no final newline: a purchase's value or a review's
text cut short) and the complete file sent again: the load warns, naming the file and line,
and the complete line replaces the cut row instead of adding a second event (both engines:
tests/storage/test_spark_parity.py runs `check_cut_then_complete` on Spark)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from shelfwise.governance import Ingestor
from tests.conftest import curated_rows

HEADER = "user_id,product_id,event_type,timestamp,text,value\n"
DAY1 = [f"u{i},p1,view,2024-03-01T10:{i:02d}:00,," for i in range(5)]
DAY2 = [
    "u1,p2,view,2024-03-02T09:00:00,,",
    "u2,p2,rating,2024-03-02T09:01:00,Love this mug! Would buy again,4",
    "u3,p2,purchase,2024-03-02T09:02:00,,84.99",
]


def _write(d: Path, body: str, products: bool = False) -> Path:
    d.mkdir(parents=True)
    if products:
        (d / "products.csv").write_text("product_id,title,price\np1,Mug,9\np2,Pot,84.99\n")
    (d / "events.csv").write_text(HEADER + body)
    return d


def check_cut_then_complete(tmp_path: Path, engine: Callable[[Path], Any] | None = None) -> None:
    work = tmp_path / "w"
    day1 = _write(tmp_path / "day1", "\n".join(DAY1) + "\n", products=True)
    full = "\n".join(DAY2) + "\n"
    cut = full[: full.index("84.99") + 2]  # "...,84" with no final newline
    days = [day1, _write(tmp_path / "cut", cut), _write(tmp_path / "full", full)]
    eng = engine(work) if engine else None
    reports = [Ingestor(work, mode="append", engine=eng).run(d) for d in days[:2]]
    # the cut load: its last line read as it is (84), with a warning naming the file and line
    warned = [w for w in reports[1].warnings if "without a final newline" in w]
    assert len(warned) == 1 and f"{days[1] / 'events.csv'}:4:" in warned[0]
    assert curated_rows(work, "SELECT value FROM curated.events WHERE event_type = 'purchase'") == [(84.0,)]
    reports.append(Ingestor(work, mode="append", engine=eng).run(days[2]))
    # the complete file: the purchase replaces the cut one (one purchase, 84.99), counted updated
    ev = reports[2].tables["events"]
    assert (ev.rows_inserted, ev.rows_updated, ev.rows_total) == (0, 1, 8)
    assert curated_rows(work, "SELECT value FROM curated.events WHERE event_type = 'purchase'") == [(84.99,)]
    assert any("replaced by their complete line" in n for n in reports[2].notes)
    assert not [w for w in reports[2].warnings if "without a final newline" in w]
    # a file ending in a newline gets no warning; the two complete lines sent before are re-sent
    assert ev.rows_redelivered == 2
    # sending the complete file once more changes nothing
    again = Ingestor(work, mode="append", engine=eng).run(days[2]).tables["events"]
    assert (again.rows_inserted, again.rows_updated, again.rows_total) == (0, 0, 8)


def test_a_file_cut_in_its_last_value_warns_and_the_complete_line_replaces_the_row(tmp_path):
    check_cut_then_complete(tmp_path)


def test_a_review_cut_in_its_text_is_replaced_by_the_complete_review(tmp_path):
    work = tmp_path / "w"
    header = "user_id,product_id,event_type,timestamp,value,text\n"
    (tmp_path / "d1").mkdir()
    (tmp_path / "d1" / "products.csv").write_text("product_id,title,price\np1,Mug,9\n")
    (tmp_path / "d1" / "events.csv").write_text(header + "u0,p1,view,2024-03-01T10:00:00,,\n")
    line = "u1,p1,rating,2024-03-01T11:00:00,3,Love this cotton shirt! Would buy again."
    (tmp_path / "d2").mkdir()
    (tmp_path / "d2" / "events.csv").write_text(header + line[:-12])
    (tmp_path / "d3").mkdir()
    (tmp_path / "d3" / "events.csv").write_text(header + line + "\n")
    for d in ("d1", "d2", "d3"):
        Ingestor(work, mode="append").run(tmp_path / d)
    assert curated_rows(work, "SELECT text FROM curated.events WHERE event_type = 'rating'") == [
        ("Love this cotton shirt! Would buy again.",)
    ]


def test_a_last_line_without_newline_that_is_complete_is_loaded_as_it_is(tmp_path):
    """Many exports lack the final newline: the row is curated (not quarantined), with the warning."""
    work = tmp_path / "w"
    d = _write(tmp_path / "d", "\n".join(DAY1), products=True)
    rep = Ingestor(work).run(d)
    assert rep.tables["events"].rows_curated == 5 and rep.tables["events"].rows_quarantined == 0
    assert any(f"{d / 'events.csv'}:6:" in w for w in rep.warnings)


def test_a_gzip_file_cut_in_its_last_value_warns_and_the_complete_line_replaces_the_row(tmp_path):
    """A .csv.gz file was never judged (its compressed bytes end as they end): its cut last line
    was loaded without a word, and the complete file sent later added a second purchase."""
    import gzip

    work = tmp_path / "w"
    Ingestor(work, mode="append").run(_write(tmp_path / "day1", "\n".join(DAY1) + "\n", products=True))
    full = "\n".join(DAY2) + "\n"
    days = []
    for name, text in (("cut", full[: full.index("84.99") + 2]), ("full", full)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "events.csv.gz").write_bytes(gzip.compress((HEADER + text).encode()))
        days.append(tmp_path / name)
    report = Ingestor(work, mode="append").run(days[0])
    warned = [w for w in report.warnings if "without a final newline" in w]
    assert len(warned) == 1 and f"{days[0] / 'events.csv.gz'}:4:" in warned[0], report.warnings
    ev = Ingestor(work, mode="append").run(days[1]).tables["events"]
    assert (ev.rows_inserted, ev.rows_updated, ev.rows_total) == (0, 1, 8)
    assert curated_rows(work, "SELECT value FROM curated.events WHERE event_type = 'purchase'") == [(84.99,)]


def test_each_part_of_a_folder_delivery_is_judged_and_names_its_file_and_line(tmp_path):
    """A folder of parts was never judged: a part cut in its last value was loaded without a
    word. Each part is judged; the warning names the part and its line, and the complete
    folder sent later replaces the cut row."""
    work = tmp_path / "w"
    Ingestor(work, mode="append").run(_write(tmp_path / "day1", "\n".join(DAY1) + "\n", products=True))
    full = "\n".join(DAY2) + "\n"
    days = []
    for name, text in (("cut", full[: full.index("84.99") + 2]), ("full", full)):
        parts = tmp_path / name / "events"
        parts.mkdir(parents=True)
        (parts / "part-0.csv").write_text(HEADER + "u4,p1,view,2024-03-02T08:00:00,,\n")
        (parts / "part-1.csv").write_text(HEADER + text)
        days.append(tmp_path / name)
    report = Ingestor(work, mode="append").run(days[0])
    warned = [w for w in report.warnings if "without a final newline" in w]
    assert len(warned) == 1 and f"{days[0] / 'events' / 'part-1.csv'}:4:" in warned[0], report.warnings
    ev = Ingestor(work, mode="append").run(days[1]).tables["events"]
    assert (ev.rows_inserted, ev.rows_updated, ev.rows_total) == (0, 1, 9)
    assert curated_rows(work, "SELECT value FROM curated.events WHERE event_type = 'purchase'") == [(84.99,)]
