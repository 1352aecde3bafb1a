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
    _write(data, ["view", "purchase", "purchase", "nonsense"])  # two fixed, one still bad
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
    assert len(q.list("events", None, "open", limit=None)) == 1 + 1  # nonsense, and the new bought
