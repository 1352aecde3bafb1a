"""An erased user stays erased: deliveries and full reloads that re-send their old rows do not
bring them back (withheld from raw, curated and quarantine, counted in the load report), end to
end through the command line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from shelfwise.governance import Pseudonymizer, SecretStore
from tests.cli.test_cli import sw

EVENTS_HEADER = "user_id,product_id,event_type,timestamp,value\n"
FAST_TRAIN = ["--models", "popularity,itemknn", "--no-fusion", "--tune-seconds", "0", "--sasrec-seconds", "0"]
FAST_TRAIN += ["--finetune-seconds", "0", "--cross-encoder-seconds", "0", "--refit-seconds", "0", "--json"]


def _shop(d: Path, extra_events: list[str] = (), extra_lines: str = "") -> Path:
    """5 products, 4 users with a profile, 40 events (u1 has 10 of them)."""
    d.mkdir(parents=True)
    (d / "products.csv").write_text(
        "product_id,title,category,price\n"
        "p1,Red mug,Kitchen > Mugs,9.5\np2,Blue mug,Kitchen > Mugs,9.5\np3,Tea pot,Kitchen,30\n"
        "p4,Kettle,Kitchen,45\np5,Spoon,Kitchen,2\n"
    )
    (d / "users.csv").write_text("user_id,segment\nu0,gold\nu1,silver\nu2,gold\nu3,bronze\n")
    rows = [f"u{i % 4},p{i % 5 + 1},view,2024-03-01T10:{i:02d}:00," for i in range(40)]
    (d / "events.csv").write_text(EVENTS_HEADER + "\n".join([*rows, *extra_events]) + "\n" + extra_lines)
    return d


def _hits(work: Path, raw: str, pseudo: str) -> dict[str, int]:
    """Rows anywhere in the warehouse (every raw and curated table, every curated version kept,
    the quarantine) that name the user, raw id or pseudonym."""
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    try:
        out = {}
        for schema, table in con.sql(
            "SELECT table_schema, table_name FROM information_schema.columns WHERE column_name = 'user_id' "
            "AND table_schema IN ('raw', 'curated')"
        ).fetchall():
            n = con.sql(
                f'SELECT count(*) FROM "{schema}"."{table}" WHERE trim(user_id) IN (?, ?)',
                params=[raw, pseudo],
            ).fetchone()[0]
            out[f"{schema}.{table}"] = n
        out["quarantine"] = con.sql(
            "SELECT count(*) FROM quarantine.rows WHERE contains(raw::VARCHAR, ?)", params=[raw]
        ).fetchone()[0]
        return out
    finally:
        con.close()


@pytest.mark.slow  # five commands: ~20 s on a quiet machine
def test_an_erased_user_does_not_come_back_with_a_delivery_or_a_full_reload(tmp_path):
    work = tmp_path / "w"
    d1 = _shop(tmp_path / "day1")
    sw("ingest", "--data", str(d1), "--workdir", str(work), "--json")
    pseudo = Pseudonymizer(SecretStore(work).pseudonym_key())("u1")
    assert sum(_hits(work, "u1", pseudo).values()) > 0
    assert pseudo.encode() in (work / "warehouse.duckdb").read_bytes()

    rep = json.loads(sw("privacy", "erase", "--workdir", str(work), "--user", "u1", "--json").stdout)
    assert rep["pseudonym"] == pseudo
    assert sum(_hits(work, "u1", pseudo).values()) == 0
    # nor in the file's bytes: a DELETE frees blocks without clearing them (the pseudonym stayed
    # readable in them); the erasure rewrites the warehouse into a fresh file
    assert "before_bytes" in rep["warehouse_compacted"], rep["warehouse_compacted"]
    assert pseudo.encode() not in (work / "warehouse.duckdb").read_bytes()
    assert not list((work / "tmp").glob("compact-*"))

    # day 1 re-delivered, with a line the reader cannot split that names u1 and one u1 event
    # dated after the erasure (a returning shopper: new data, kept)
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    again = _shop(tmp_path / "again", [f"u1,p2,view,{later},"], 'u1,p3,"view,2024-03-01T11:00:00,\n')
    out = json.loads(sw("ingest", "--data", str(again), "--workdir", str(work), "--append", "--json").stdout)
    ev, us = out["tables"]["events"], out["tables"]["users"]
    # 42 lines: u1's 10 old events and the malformed line naming u1 withheld, 30 re-delivered,
    # u1's new event added
    assert (ev["rows_in"], ev["rows_withheld"], ev["withheld"]) == (42, 11, {"erased_user": 11})
    assert (ev["rows_curated"], ev["rows_quarantined"], ev["balanced"]) == (1, 30, True)
    assert ev["reasons"] == {"duplicate_row": 30}
    # u1's profile row is withheld: a users row has no date, so it cannot be told from an old one
    assert (us["rows_in"], us["rows_withheld"], us["rows_curated"], us["balanced"]) == (4, 1, 0, True)
    assert any("erased users withheld" in n for n in out["notes"])
    # the quality report adds up too: a withheld card and column beside quarantined
    page = (work / "reports" / "quality.html").read_text()
    assert "withheld (erased users)<b>12</b>" in page and "<th>withheld</th>" in page
    # the new event alone, in raw and in the curated table's new version (older versions: none)
    hits = {k: n for k, n in _hits(work, "u1", pseudo).items() if n}
    assert hits == {"raw.events": 1, "curated.events": 1, "curated.events__v2": 1}, hits
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    try:
        ts = con.sql("SELECT timestamp FROM curated.events WHERE user_id = ?", params=[pseudo]).fetchall()
        assert [str(t[0])[:19].replace(" ", "T") for t in ts] == [later]
    finally:
        con.close()

    # the audit entry counts the withheld rows and names no one
    audit = [json.loads(x) for x in (work / "audit" / "audit.jsonl").read_text().splitlines()]
    entry = [e for e in audit if e["action"] == "ingest"][-1]
    assert entry["details"]["tables"]["events"]["withheld"] == {"erased_user": 11}
    assert "u1" not in json.dumps(entry) and pseudo not in json.dumps(entry)

    # a full reload of the shop's export that still holds u1: their rows do not come back (the new
    # event is not in this export, so u1 is gone entirely)
    out = json.loads(sw("ingest", "--data", str(d1), "--workdir", str(work), "--json").stdout)
    ev, us = out["tables"]["events"], out["tables"]["users"]
    assert (ev["rows_in"], ev["rows_curated"], ev["rows_withheld"], ev["balanced"]) == (40, 30, 10, True)
    assert (us["rows_in"], us["rows_curated"], us["rows_withheld"], us["balanced"]) == (4, 3, 1, True)
    hits = {k: n for k, n in _hits(work, "u1", pseudo).items() if n}
    assert hits == {"raw.events": 1, "curated.events__v2": 1}, hits  # the delivery's new event


@pytest.mark.slow
def test_training_after_a_full_reload_has_no_trace_of_an_erased_user(tmp_path):
    from shelfwise.serving import Bundle, current_bundle

    work, d1 = tmp_path / "w", _shop(tmp_path / "day1")
    sw("train", "--data", str(d1), "--workdir", str(work), *FAST_TRAIN)
    pseudo = json.loads(sw("privacy", "erase", "--workdir", str(work), "--user", "u1", "--json").stdout)[
        "pseudonym"
    ]
    # the shop's export still holds u1 (a copy elsewhere: an unchanged directory is not re-read)
    sw("train", "--data", str(_shop(tmp_path / "export")), "--workdir", str(work), *FAST_TRAIN)
    bundle = Bundle.load(current_bundle(work))
    ids = set(bundle.interactions.user_ids.astype(str))
    assert pseudo not in ids and len(ids) == 3
    assert bundle.manifest["data_versions"]["events"]["rows"] == 30


def test_json_lines_an_erased_user_is_withheld_from_valid_and_malformed_lines(tmp_path):
    from shelfwise.governance import Ingestor
    from shelfwise.governance._erase import erase_user

    work, d = tmp_path / "w", tmp_path / "d"
    d.mkdir()
    rows = [
        json.dumps(
            {
                "user_id": f"u{i % 3}",
                "product_id": "p1",
                "event_type": "view",
                "timestamp": f"2024-03-01T10:{i:02d}:00",
            }
        )
        for i in range(9)
    ]
    (d / "events.jsonl").write_text("\n".join(rows) + "\n")
    Ingestor(work).run(d)
    erase_user(work, "u2")
    # the same file again, plus a line that is no JSON object and names u2, and one that names no one
    (d / "events.jsonl").write_text("\n".join(rows) + '\n{"user_id": "u2", "product_id"\n[1, 2]\n')
    full = Ingestor(work).run(d)
    rep = full.tables["events"]
    assert (rep.rows_in, rep.rows_curated, rep.rows_quarantined, rep.rows_withheld) == (11, 6, 1, 4)
    assert rep.withheld == {"erased_user": 4} and rep.balanced and rep.reasons == {"malformed_row": 1}
    # the note counts every withheld row, the malformed line too (it said 3 where the report said 4)
    assert any("events: 4 row(s) of erased users withheld" in n for n in full.notes), full.notes

    # served events absorbed later (the feedback loop's governed path): u2's old event is withheld,
    # the one they sent after the erasure is curated
    from shelfwise.serving._feedback import ingest_events

    later = (datetime.now(UTC) + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ahead = (datetime.now(UTC) + timedelta(hours=36)).strftime("%Y-%m-%dT%H:%M:%SZ")
    served = tmp_path / "served"
    served.mkdir()
    (served / "events.jsonl").write_text(
        json.dumps(
            {
                "user_id": "u2",
                "product_id": "p1",
                "event_type": "click",
                "timestamp": "2024-03-02T10:00:00Z",
                "event_id": "e1",
            }
        )
        + "\n"
        + json.dumps(
            {"user_id": "u2", "product_id": "p1", "event_type": "click", "timestamp": later, "event_id": "e2"}
        )
        + "\n"
        # dated 36 h ahead: within max_future_days (2) for anyone else, but an erased user's row
        # must be dated no later than the load (a day of clock skew) to count as new data
        + json.dumps(
            {"user_id": "u2", "product_id": "p1", "event_type": "click", "timestamp": ahead, "event_id": "e3"}
        )
        + "\n"
    )
    rep = ingest_events(work, served).tables["events"]
    assert (rep.rows_in, rep.rows_curated, rep.rows_withheld, rep.balanced) == (3, 1, 2, True)


@pytest.mark.slow  # ingest, erase, absorb: ~10 s
def test_events_still_being_spooled_when_a_user_is_erased_are_stored_nowhere(tmp_path):
    """The segment a running server is writing is not rewritten by an erasure (the server holds
    it open); its absorb withholds the erased user's events from the warehouse AND the archive,
    and a server starting later does not replay them into its online state. A later event of a
    returning shopper, and other users' events, are kept."""
    from shelfwise.governance._erasures import Erasures
    from shelfwise.serving._feedback import EVENTS_DIR, FEEDBACK_DIR, absorb, served_since

    data, work = _shop(tmp_path / "d"), tmp_path / "w"
    sw("ingest", "--data", str(data), "--workdir", str(work))
    spool = work / EVENTS_DIR
    spool.mkdir(parents=True)
    later = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    events = [
        {"user_id": "u1", "product_id": "p2", "event_type": "click", "timestamp": "2024-03-02T10:00:00Z"},
        {"user_id": "u2", "product_id": "p3", "event_type": "click", "timestamp": "2024-03-02T10:01:00Z"},
        {"user_id": "u1", "product_id": "p4", "event_type": "view", "timestamp": later},  # back after it
        {"user_id": "u1", "product_id": "p5", "event_type": "view", "timestamp": "2099-01-01T00:00:00Z"},
    ]
    import socket

    # an open segment of a writer of this host that is gone (pid 999999): a killed server's
    segment = spool / f"20240302T100000000000Z-{socket.gethostname()}-999999.jsonl.open"
    segment.write_text("".join(json.dumps({"event": e, "received_at": 1}) + "\n" for e in events))
    sw("privacy", "erase", "--workdir", str(work), "--user", "u1")
    assert "u1" in segment.read_text()  # left to its absorb

    erasures = Erasures.of(work)
    assert erasures is not None
    replayed = [e for e in served_since(work, "0") if not erasures.withholds(e)]
    assert [(e["user_id"], e["product_id"]) for e in replayed] == [("u2", "p3"), ("u1", "p4")]

    res = absorb(work)
    assert res["status"] == "ok" and res["withheld_erased"] == 2 and res["accepted"] == 2, res  # p2, 2099
    archived = [
        json.loads(x)
        for p in (work / FEEDBACK_DIR).glob("events-*.jsonl")
        for x in p.read_text().splitlines()
    ]
    assert [(e["user_id"], e["product_id"]) for e in archived] == [("u2", "p3"), ("u1", "p4")]
    pseudo = Pseudonymizer(SecretStore(work).pseudonym_key())("u1")
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    try:
        mine = con.sql("SELECT product_id FROM curated.events WHERE user_id = ?", params=[pseudo]).fetchall()
    finally:
        con.close()
    assert mine == [("p4",)]  # only the returning shopper's new event


def test_a_rewrite_of_the_warehouse_that_cannot_be_made_now_is_owed_and_made_later(tmp_path):
    """The erasure's rewrite of the warehouse file failed when another connection held it (here
    one of this process: a console erasing inside `serve` while its absorber reads), after the
    rows were deleted and before the erasure was registered: the person half erased, never
    registered. The rewrite comes last and never fails the erasure; it stays owed and the next
    retention run (or erasure) makes it."""
    from shelfwise import Shop
    from shelfwise.governance._erase import COMPACT_OWED
    from shelfwise.governance._erasures import ERASURES_FILE
    from shelfwise.storage import Warehouse

    work = tmp_path / "w"
    sw("ingest", "--data", str(_shop(tmp_path / "d")), "--workdir", str(work), "--json")
    pseudo = Pseudonymizer(SecretStore(work).pseudonym_key())("u1")
    shop = Shop(work)
    with Warehouse(work) as held:  # (open for the whole erasure)
        rep = shop.erase("u1")
        assert held.sql("SELECT count(*) FROM curated.events").fetchone()[0] == 30
    assert "skipped" in rep["warehouse_compacted"], rep["warehouse_compacted"]
    assert pseudo in (work / ERASURES_FILE).read_text()  # registered all the same
    assert (work / COMPACT_OWED).exists()
    assert sum(_hits(work, "u1", pseudo).values()) == 0
    out = shop.enforce_retention()  # nothing to delete; the owed rewrite is made
    assert "before_bytes" in out["warehouse_compacted"], out
    assert not (work / COMPACT_OWED).exists()
    assert pseudo.encode() not in (work / "warehouse.duckdb").read_bytes()


def test_an_id_written_as_a_float_is_the_same_customer_for_access_and_erasure(tmp_path):
    """Curation reads `101.0` (pandas writes integer ids so) as customer 101; the right of access
    listed only the raw rows written `101`, and the erasure left the `101.0` rows in raw and in
    the quarantine (asked for as `101` or as `101.0`)."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title,category,price\np1,Mug,Kitchen,9\np2,Pot,Kitchen,30\n")
    (d / "users.csv").write_text("user_id,segment\n101.0,gold\n102,silver\n")
    (d / "events.csv").write_text(
        EVENTS_HEADER
        + "101,p1,view,2024-03-01T10:00:00,\n 101 ,p2,view,2024-03-01T10:01:00,\n"
        + "101.0,p2,click,2024-03-01T10:02:00,\n101.0,p9,view,2024-03-01T10:03:00,\n"
        + "1010,p1,view,2024-03-01T10:04:00,\n102,p1,view,2024-03-01T10:05:00,\n"
    )
    work = tmp_path / "w"
    sw("ingest", "--data", str(d), "--workdir", str(work), "--json")
    out = tmp_path / "access.json"
    rep = json.loads(
        sw("privacy", "export", "--workdir", str(work), "--user", "101.0", "--out", str(out), "--json").stdout
    )
    assert {k: rep["parts"][k] for k in ("raw.events", "raw.users", "quarantine")} == {
        "raw.events": 4,
        "raw.users": 1,
        "quarantine": 1,  # p9: an unknown product
    }
    assert rep["parts"]["curated.events@v1"] == 3
    # files that left the workdir before: the erasure cannot reach them, it names them
    sw("export", "--workdir", str(work), "--table", "events", "--out", str(tmp_path / "ev.csv"))
    sw("export", "--workdir", str(work), "--table", "products", "--out", str(tmp_path / "pr.csv"))
    sw("export", "--workdir", str(work), "--table", "users", "--out", str(tmp_path / "gone.csv"))
    (tmp_path / "gone.csv").unlink()
    erased = json.loads(sw("privacy", "erase", "--workdir", str(work), "--user", "101", "--json").stdout)
    assert [(e["action"], Path(e["file"]).name) for e in erased["earlier_exports"]] == [("export", "ev.csv")]
    # (the products name no customer; a file deleted since is no longer one to delete)
    assert "1 file(s) written out of the workdir" in erased["not_covered"]
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    try:
        left = sorted(r[0].strip() for r in con.sql("SELECT user_id FROM raw.events").fetchall())
        assert left == ["1010", "102"]  # another customer whose id starts alike is theirs
        assert [r[0] for r in con.sql("SELECT user_id FROM raw.users").fetchall()] == ["102"]
        assert con.sql(
            "SELECT count(*) FROM quarantine.rows WHERE contains(raw::VARCHAR, '101.0')"
        ).fetchone() == (0,)
    finally:
        con.close()


def test_the_erasure_names_earlier_exports_written_as_folders_or_from_another_directory(
    tmp_path, monkeypatch
):
    """`recommend --all-users` on Spark writes a folder, and three commands audited their output
    as given (`out.csv`, relative to wherever they ran): the erasure's check for files still there
    found neither."""
    from shelfwise.governance import AuditLog
    from shelfwise.governance._audit import file_named
    from shelfwise.governance._erase import earlier_exports

    work = tmp_path / "w"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "part-0.parquet").write_text("x")
    (tmp_path / "profiles.csv").write_text("user_id\n")
    AuditLog(work).append("recommend.all_users", out=file_named("lists"), model=None, counts={})
    AuditLog(work).append("insights.customers", out=file_named("profiles.csv"), users=1)
    AuditLog(work).append("audiences.export", out=file_named("s3://bucket/aud.csv"), name="a", rows=1)
    monkeypatch.chdir(tmp_path.parent)  # (the erasure runs elsewhere: a server, another shell)
    got = [(e["action"], e["file"]) for e in earlier_exports(work)]
    assert got == [
        ("recommend.all_users", str(tmp_path / "lists")),
        ("insights.customers", str(tmp_path / "profiles.csv")),
        ("audiences.export", "s3://bucket/aud.csv"),  # (not on this disk to check: named)
    ]


def test_a_user_erased_while_a_training_runs_is_not_in_the_bundle_it_writes(tmp_path, monkeypatch):
    """The erasure lands after the training read the history and before it wrote its bundle (as
    when `privacy erase` runs beside a long `train`): the bundles there were and the warehouse
    are scrubbed by the erasure, and the new bundle must not bring the user back (it did: the
    training had read them, and single-user mode made that bundle live)."""
    from shelfwise import Shop
    from shelfwise.lifecycle import _train
    from shelfwise.serving import Bundle, current_bundle

    work, d1 = tmp_path / "w", _shop(tmp_path / "day1")
    shop = Shop(work)
    shop.ingest(d1)
    erased: dict[str, str] = {}
    write = _train.write_bundle

    def erase_then_write(*args, **kwargs):
        erased.update(Shop(work).erase("u1"))  # the history with u1 is read already
        return write(*args, **kwargs)

    monkeypatch.setattr(_train, "write_bundle", erase_then_write)
    said: list[str] = []
    result = shop.train(models=["popularity", "itemknn"], fusion=False, log=said.append,
                        search_finetune_steps=0, search_cross_steps=0)  # fmt: skip
    bundle = Bundle.load(current_bundle(work))
    assert bundle.path == result.bundle
    ids = set(bundle.interactions.user_ids.astype(str))
    assert erased["pseudonym"] not in ids and len(ids) == 4  # (its index stays, named erased_N)
    assert [e["pseudonym"] for e in bundle.manifest["erasures"]] == [erased["pseudonym"]]
    assert any("1 user(s) erased while this run trained" in line for line in said), said
    assert shop.access_export("u1", tmp_path / "a.json")["parts"].get(f"bundles/{bundle.version}", 0) == 0
