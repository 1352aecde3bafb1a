"""Idempotency keys and a repeatable absorb, without a trained shop: the id store shared by
workers, and an absorber that dies after its ingest (segments absorbed twice) curating once."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shelfwise.serving._event_ids import Claimed, RedisEventIds, SqliteEventIds
from shelfwise.serving._feedback import EVENTS_DIR, REJECTED_DIR, absorb, pending_events, spooled_event_ids
from shelfwise.serving._spool import FileSpool, ready_segments

NOW = "2026-11-01T12:00:00Z"


def test_sqlite_ids_are_shared_by_workers_and_survive_a_reopen(tmp_path: Path):
    a, b = SqliteEventIds(tmp_path / "ids.sqlite"), SqliteEventIds(tmp_path / "ids.sqlite")  # two workers
    assert a.seen(["x", "y"]) == set()
    a.remember(["x", "x", "z"])
    assert b.seen(["x", "y", "z"]) == {"x", "z"}
    a.close()
    b.close()
    c = SqliteEventIds(tmp_path / "ids.sqlite")
    assert c.seen([f"id{i}" for i in range(1200)] + ["x"]) == {"x"}  # more than one IN (...) chunk
    assert c.prune() == 0 and len(c) == 2
    c.window_s = -1.0  # everything is older than the window
    assert c.prune() == 2 and c.seen(["x"]) == set()


FREE = Claimed(set(), set())  # every id claimed


def test_a_claim_is_atomic_across_processes(tmp_path: Path):
    """Two processes (two stores on one file, each its own owner): while A has claimed an id and
    not yet remembered it (stalled on the spool's fsync), B is told to wait, not to accept it."""
    a, b = SqliteEventIds(tmp_path / "ids.sqlite"), SqliteEventIds(tmp_path / "ids.sqlite")
    assert a.claim(["e1", "e2", "e2"]) == FREE
    assert b.claim(["e2", "e3"]) == Claimed(set(), {"e2"})  # busy: nothing claimed, e3 neither
    assert b.seen(["e1", "e2", "e3"]) == set()
    assert a.claim(["e3"]) == FREE and b.claim(["e3"]).busy == {"e3"}
    a.remember(["e1", "e2"])
    assert b.claim(["e1", "e2"]) == Claimed({"e1", "e2"}, set())  # A accepted them: duplicates
    a.release(["e3"])  # A's spool failed: B may accept it now
    assert b.claim(["e3"]) == FREE
    a.release(["e3"])  # a release ends only its own claims
    assert a.claim(["e3"]).busy == {"e3"}
    b.remember(["e3"])
    assert a.claim(["e3"]) == Claimed({"e3"}, set()) and len(a) == 3
    assert a.claim(["e4"]) == FREE
    a.close()  # its owner gone (its lock and file): its claim is taken over
    assert b.claim(["e4"]) == FREE
    stuck = SqliteEventIds(tmp_path / "ids.sqlite", claim_ttl_s=0.0)  # every claim stale at once
    assert stuck.claim(["e4"]) == FREE
    b.close()
    stuck.close()


def test_the_claim_of_a_process_killed_mid_request_is_taken_over(tmp_path: Path):
    path = tmp_path / "spool" / "ids.sqlite"
    claimer = (
        "import sys; from shelfwise.serving._event_ids import SqliteEventIds;"
        "s = SqliteEventIds(sys.argv[1]); assert s.claim(['k1', 'k2']).busy == set();"
        "print(s.owner, flush=True); sys.stdin.read()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", claimer, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        owner = proc.stdout.readline().strip()  # it has claimed k1 and k2, and stalls
        assert owner and (path.parent / ".owners" / owner).exists()
        b = SqliteEventIds(path)
        assert b.claim(["k1"]) == Claimed(set(), {"k1"})  # its owner is alive: wait
    finally:
        proc.kill()  # kill -9: the kernel drops its lock
        proc.wait(30)
    assert b.claim(["k1"]) == FREE  # taken over: the client's retry is accepted
    assert not (path.parent / ".owners" / owner).exists()  # the dead owner's file is tidied
    b.remember(["k1"])
    assert b.claim(["k1", "k2"]) == Claimed({"k1"}, set())
    assert b.prune() == 0 and [p.name for p in (path.parent / ".owners").iterdir()] == [b.owner]
    b.close()


def test_an_older_versions_id_table_keeps_working(tmp_path: Path):
    """`ids(id, at)` of an older version: read as it is, and still written by an older process."""
    path = tmp_path / "ids.sqlite"
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("CREATE TABLE ids (id TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID")
    con.execute("INSERT INTO ids VALUES ('old-1', ?)", (time.time(),))
    store = SqliteEventIds(path)
    assert store.claim(["old-1", "new-1"]) == Claimed({"old-1"}, set())
    con.execute("INSERT OR IGNORE INTO ids VALUES (?, ?)", ("old-2", time.time()))  # an older process
    assert store.seen(["old-1", "old-2", "new-1"]) == {"old-1", "old-2"}  # a claim is not accepted yet
    store.remember(["new-1"])
    assert {r[0] for r in con.execute("SELECT id FROM ids")} == {"old-1", "old-2", "new-1"}
    con.close()
    store.close()


def test_redis_claims_are_atomic_across_replicas(redis_url: str):
    import redis

    client = redis.Redis.from_url(redis_url)
    a, b = RedisEventIds(client, window_s=600), RedisEventIds(client, window_s=600)  # two replicas
    assert a.claim(["c-1", "c-2", "c-2"]) == FREE
    assert b.claim(["c-2", "c-3"]) == Claimed(set(), {"c-2"})  # busy: nothing claimed, c-3 neither
    assert a.claim(["c-3"]) == FREE and b.seen(["c-1", "c-3"]) == set()
    a.remember(["c-1", "c-2"])
    assert b.claim(["c-1", "c-2"]) == Claimed({"c-1", "c-2"}, set())
    assert b.claim(["c-3"]).busy == {"c-3"}
    a.release(["c-3"])  # A's spool failed: B may accept it now
    assert b.claim(["c-3"]) == FREE
    assert client.ttl(RedisEventIds.prefix + "c-3") <= 60 < client.ttl(RedisEventIds.prefix + "c-1")
    dead = RedisEventIds(client, window_s=60, claim_ttl_s=0.05)  # a replica that dies mid-request
    assert dead.claim(["c-4"]) == FREE and b.claim(["c-4"]).busy == {"c-4"}
    deadline = time.monotonic() + 10
    while client.exists(RedisEventIds.prefix + "c-4") and time.monotonic() < deadline:
        time.sleep(0.01)  # its claim expires (Redis's clock, not a guess)
    assert b.claim(["c-4"]) == FREE
    dead.release(["c-4"])  # a late release leaves the new owner's claim
    assert a.claim(["c-4"]).busy == {"c-4"}


def test_redis_ids(redis_url: str):
    import redis

    ids = RedisEventIds(redis.Redis.from_url(redis_url), window_s=60)
    assert ids.seen(["r-1", "r-2"]) == set()
    ids.remember(["r-1"])
    assert ids.seen(["r-1", "r-2"]) == {"r-1"}


def _workdir(tmp_path: Path) -> Path:
    from shelfwise.governance import Ingestor

    data, work = tmp_path / "data", tmp_path / "w"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title\nP1,Tea\nP2,Cup\n")
    (data / "events.csv").write_text(f"user_id,product_id,event_type,timestamp\nu0,P1,view,{NOW}\n")
    Ingestor(work).run(data)
    return work


def _line(event: dict[str, object], **extra: object) -> bytes:
    return json.dumps({"event": event, "received_at": NOW, **extra}).encode()


def test_an_absorb_repeated_after_a_crash_curates_and_quarantines_once(tmp_path: Path):
    import duckdb

    work = _workdir(tmp_path)
    events = [
        {"user_id": f"u{i}", "product_id": "P1", "event_type": "view", "timestamp": NOW, "session_id": "s"}
        for i in range(5)
    ]
    events[0]["event_id"] = "client-1"
    spool = FileSpool(work / EVENTS_DIR, fsync=False)
    spool.append([_line(e) for e in events]).result()
    assert pending_events(work) == 5 and spooled_event_ids(work) == ["client-1"]
    assert ready_segments(work / EVENTS_DIR) == []  # open, and its writer alive (it holds the lock)
    spool.close()
    rejected = FileSpool(work / REJECTED_DIR, fsync=False)
    bad = {"user_id": "u9", "product_id": "NOPE", "event_type": "view", "timestamp": NOW}
    rejected.append([_line(bad, failures=[{"reason": "unknown_reference", "detail": "NOPE"}])]).result()
    rejected.close()
    (seg,) = ready_segments(work / EVENTS_DIR)
    with open(seg, "ab") as fh:  # a write the crash cut short: never acknowledged
        fh.write(b'{"event": {"user_id": "torn"')
    segments = {p: p.read_bytes() for d in (EVENTS_DIR, REJECTED_DIR) for p in ready_segments(work / d)}

    first = absorb(work)
    assert (first["accepted"], first["quarantined"]) == (5, 1) and pending_events(work) == 0
    for p, content in segments.items():  # as if the absorber died before removing its segments
        p.write_bytes(content)
    second = absorb(work)
    assert second["accepted"] == 5 and second["quarantined_by_ingest"] == 5 and second["quarantined"] == 0

    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    ids = [r[0] for r in con.sql("SELECT event_id FROM curated.events WHERE session_id = 's'").fetchall()]
    reasons = con.sql(
        "SELECT reason, count(*) FROM quarantine.rows WHERE table_name = 'events' GROUP BY 1"
    ).fetchall()
    named = con.sql(
        "SELECT source_file, source_line FROM quarantine.rows WHERE reason = 'duplicate_row' ORDER BY 2"
    ).fetchall()
    loads = [
        r[0]
        for r in con.sql(
            "SELECT source_file FROM meta.raw_loads WHERE table_name = 'events' ORDER BY load_id"
        ).fetchall()
    ]
    con.close()
    # the rows an absorb read are named where they stay: its archive, line for line (the
    # temporary file ingestion read is gone), in the quarantine, the raw loads and the lineage
    archives = sorted((work / "feedback").glob("events-*.jsonl"))
    assert len(archives) == 2 and {f for f, _ in named} == {str(archives[1].resolve())}
    lines = archives[1].read_text().splitlines()
    assert [json.loads(lines[n - 1])["user_id"] for _, n in named] == [f"u{i}" for i in range(5)]
    assert loads[-2:] == [str(a.resolve()) for a in archives]  # (after the first load's file)
    from shelfwise.governance import read_lineage

    inputs = {
        i["name"]
        for e in read_lineage(work)
        if e["job"]["name"] == "shelfwise.events"
        for i in e.get("inputs", [])
        if i["namespace"] == "file"  # (and each absorb's earlier events version: an append)
    }
    assert inputs == {str(a.resolve()) for a in archives}
    assert len(ids) == 5 and len(set(ids)) == 5 and "client-1" in ids
    assert sorted(i for i in ids if i != "client-1") == [
        f"spool:{seg.name[: -len('.jsonl')]}:{n}" for n in range(2, 6)
    ]
    assert dict(reasons) == {"duplicate_row": 5, "unknown_reference": 1}


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_ingest_curates_an_event_id_once(tmp_path: Path, mode: str):
    """A file load too: a repeated event_id is a duplicate_row, and appending, so is one already curated."""
    import duckdb

    from shelfwise.governance import Ingestor

    work = _workdir(tmp_path)
    day = tmp_path / "day2"
    day.mkdir()
    (day / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,idempotency_key\n"
        f"u1,P1,view,{NOW},e-1\nu2,P2,click,{NOW},e-1\nu3,P2,view,{NOW},\nu4,P2,view,{NOW},e-2\n"
    )
    (day / "products.csv").write_text("product_id,title\nP1,Tea\nP2,Cup\n")
    Ingestor(work).run(day)
    rep = Ingestor(work, mode=mode).run(day)  # the same delivery again
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    rows = con.sql("SELECT event_id, user_id FROM curated.events ORDER BY event_id NULLS LAST").fetchall()
    con.close()
    if mode == "replace":  # a full snapshot: only the repeat within the file goes
        assert rep.tables["events"].reasons == {"duplicate_row": 1}
        assert [r[0] for r in rows] == ["e-1", "e-2", None]
    else:
        assert rep.tables["events"].reasons["duplicate_row"] >= 3  # e-1 twice, e-2
        assert [r[0] for r in rows if r[0]] == ["e-1", "e-2"]


def test_events_accepted_without_a_user_or_product_key_are_absorbed(tmp_path: Path):
    """An anonymous view sent without a `user_id` key and a search without `product_id` (both
    accepted by the intake) are absorbed: a batch of them alone once failed every absorb (and
    train) on "missing required column(s) 'user_id'"."""
    import duckdb

    work = _workdir(tmp_path)
    spool = FileSpool(work / EVENTS_DIR, fsync=False)
    view = {"session_id": "h1", "product_id": "P2", "event_type": "view", "timestamp": NOW}
    search = {"session_id": "h1", "event_type": "search", "query": "tea", "timestamp": NOW}
    spool.append([_line(view), _line(search)]).result()
    spool.close()
    got = absorb(work)
    assert (got["status"], got["accepted"], got["curated"]) == ("ok", 2, 2) and pending_events(work) == 0
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    rows = con.sql(
        "SELECT starts_with(user_id, 'a_'), product_id, event_type FROM curated.events "
        "WHERE session_id = 'h1' ORDER BY 3"
    ).fetchall()
    con.close()
    assert rows == [(True, None, "search"), (True, "P2", "view")]  # (the session's anonymous id)
