"""A full re-ingest replays the served-events archives; one an erasure emptied (its only
shopper erased) made every later full load crash with DuckDB's sniffing error, after the load
itself was committed. An empty JSON lines file anywhere is no rows, said."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from shelfwise import Shop
from shelfwise.serving._feedback import FEEDBACK_DIR
from tests.serving.conftest import known_users


def _one_served_event_absorbed(trained, tmp_path: Path) -> tuple[Path, Path, Shop, str]:
    """A copy of the trained shop where a known shopper's view was served and absorbed (into
    the warehouse and the served-events archive): (data, workdir, shop, the shopper)."""
    data, src = trained
    w = tmp_path / "w"
    shutil.copytree(src, w)
    shop = Shop(w)
    user = known_users(data, w, 1)[0]
    product = shop.table("products")["product_id"].iloc[0]
    ev = {
        "user_id": user,
        "product_id": product,
        "event_type": "view",
        "timestamp": datetime.now(UTC).isoformat(),
    }
    assert shop.send_events([ev])["accepted"] == 1
    shop.absorb_events()
    return data, w, shop, user


def test_a_full_reload_after_an_erasure_emptied_an_archive(trained, tmp_path: Path) -> None:
    data, w, shop, user = _one_served_event_absorbed(trained, tmp_path)
    archives = sorted((w / FEEDBACK_DIR).glob("events-*.jsonl"))
    assert archives
    shop.erase(user)
    assert all(a.stat().st_size == 0 for a in archives if a.exists())  # its only line was theirs
    report = shop.ingest(data)  # a full reload: the archives replayed on top (none to replay)
    assert report.tables["events"].rows_curated > 0
    # an empty JSON lines delivery: no rows, said (the read crashed)
    day = tmp_path / "day"
    day.mkdir()
    (day / "events.jsonl").write_text("")
    rep = shop.ingest(day, append=True)
    assert "events" not in rep.tables and any(
        "events.jsonl: no rows (an empty JSON lines file)" in n for n in rep.notes
    )


def test_a_catalog_snapshot_does_not_replay_the_served_events(trained, tmp_path: Path) -> None:
    """A full load of a products file alone keeps the curated events as they are: replaying the
    archives on top only re-sent them ("replayed 1 served events", the catalog then said the
    events' latest load had re-sent rows)."""
    data, _, shop, _ = _one_served_event_absorbed(trained, tmp_path)
    before = len(shop.table("events"))
    snap = tmp_path / "snap"
    snap.mkdir()
    shutil.copy(data / "products.csv", snap / "products.csv")
    report = shop.ingest(snap)
    assert "events" not in report.tables
    assert not [n for n in report.notes if "replayed" in n], report.notes
    assert len(shop.table("events")) == before
