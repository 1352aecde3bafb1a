"""Daily deliveries (`ingest --append`), column maps (`shelfwise.toml`, `--map`) and order-lines
exports, end to end through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shelfwise.errors import ShelfwiseError, SourceError
from shelfwise.governance import Ingestor
from shelfwise.governance._mapping import load_column_map
from tests.cli.test_cli import sw
from tests.conftest import copy_head, curated_rows, shared

EVENTS_HEADER = "user_id,product_id,event_type,timestamp,value\n"


def _day1(d: Path) -> Path:
    d.mkdir(parents=True)
    (d / "products.csv").write_text(
        "product_id,title,category,price\n"
        "p1,Red mug,Kitchen > Mugs,9.5\np2,Blue mug,Kitchen > Mugs,9.5\np3,Tea pot,Kitchen,30\n"
        "p4,Kettle,Kitchen,45\np5,Spoon,Kitchen,2\n"
    )
    rows = [f"u{i % 4},p{i % 5 + 1},view,2024-03-01T10:{i:02d}:00," for i in range(20)]
    (d / "events.csv").write_text(EVENTS_HEADER + "\n".join(rows) + "\n")
    return d


def _day2(d: Path) -> Path:
    """Re-sends 5 events of day 1 (its last five lines), adds 7 new ones (one of them twice in
    this file, one naming p5, a product only day 1's catalog has) and a catalog delta: p1
    unchanged, p2 with a new price, p6 new."""
    d.mkdir(parents=True)
    (d / "products.csv").write_text(
        "product_id,title,category,price\np1,Red mug,Kitchen > Mugs,9.5\np2,Blue mug,Kitchen > Mugs,8\n"
        "p6,Tray,Kitchen,12\n"
    )
    resent = [f"u{i % 4},p{i % 5 + 1},view,2024-03-01T10:{i:02d}:00," for i in range(15, 20)]
    new = [f"u{i % 3},p6,purchase,2024-03-02T09:{i:02d}:00,12" for i in range(6)] + [
        "u9,p5,view,2024-03-02T11:00:00,"
    ]
    (d / "events.csv").write_text(EVENTS_HEADER + "\n".join(resent + new + [new[0]]) + "\n")
    return d


def test_a_day2_delivery_that_resends_part_of_day1_adds_exactly_the_new_rows(tmp_path):
    work = tmp_path / "w"
    d1, d2 = _day1(tmp_path / "day1"), _day2(tmp_path / "day2")
    first = json.loads(sw("ingest", "--data", str(d1), "--workdir", str(work), "--json").stdout)
    assert first["mode"] == "replace" and first["tables"]["events"]["rows_curated"] == 20

    out = json.loads(sw("ingest", "--data", str(d2), "--workdir", str(work), "--append", "--json").stdout)
    assert out["mode"] == "append" and out["status"] == "COMPLETE"
    ev, pr = out["tables"]["events"], out["tables"]["products"]
    # 13 rows in: 5 re-sent (already curated), 1 repeated within the file, 7 new
    assert (ev["rows_in"], ev["rows_curated"], ev["rows_quarantined"]) == (13, 7, 6)
    assert ev["reasons"] == {"duplicate_row": 6} and ev["balanced"]
    assert (ev["rows_inserted"], ev["rows_updated"], ev["rows_unchanged"], ev["rows_total"]) == (7, 0, 5, 27)
    assert (pr["rows_in"], pr["rows_curated"], pr["rows_quarantined"]) == (3, 2, 1)
    assert (pr["rows_inserted"], pr["rows_updated"], pr["rows_unchanged"], pr["rows_total"]) == (1, 1, 1, 6)
    assert curated_rows(work, "SELECT count(*) FROM curated.events") == [(27,)]
    assert curated_rows(
        work,
        "SELECT product_id, price FROM curated.products WHERE product_id IN ('p1', 'p2', 'p6') ORDER BY 1",
    ) == [("p1", 9.5), ("p2", 8.0), ("p6", 12.0)]
    # the event naming p5 (day 1's catalog only) is valid: no unknown_reference
    assert curated_rows(work, "SELECT count(*) FROM curated.events WHERE product_id = 'p5'") == [(5,)]

    # re-delivered rows are quarantined as duplicate_row, named as such, with the load that has them
    q = curated_rows(
        work,
        "SELECT table_name, source_line, status, detail FROM quarantine.rows "
        f"WHERE run_id = '{out['run_id']}' AND status = 'redelivered' ORDER BY 1, 2",
    )
    assert [(t, line) for t, line, _, _ in q] == [("events", n) for n in range(2, 7)] + [("products", 2)]
    d1_events = str(d1 / "events.csv")
    assert all("first delivered by load" in d and d1_events in d for t, _, _, d in q if t == "events")
    assert "re-delivered: an identical row is already curated (events v1)" in q[0][3]
    assert "p1 in products v1 is identical" in q[-1][3]
    within = curated_rows(
        work,
        f"SELECT status, detail FROM quarantine.rows WHERE run_id = '{out['run_id']}' AND status = 'open'",
    )
    assert within == [("open", "exact duplicate of an earlier row")]

    # the audit log and lineage record the append load
    audit = [json.loads(x) for x in (work / "audit" / "audit.jsonl").read_text().splitlines()]
    ingests = [a["details"] for a in audit if a["action"] == "ingest"]
    assert [a["mode"] for a in ingests] == ["replace", "append"]
    assert ingests[1]["tables"]["events"] == {
        "rows_in": 13,
        "curated": 7,
        "quarantined": 6,
        "inserted": 7,
        "updated": 0,
        "unchanged": 5,
        "rows_total": 27,
        # 1 of the 8 new rows (13 less 5 re-delivered) held back: 12.5%, over the 5% check
        "contract_check": "failed",
    }
    lineage = [json.loads(x) for x in (work / "lineage" / "openlineage.jsonl").read_text().splitlines()]
    done = [e for e in lineage if e["run"]["runId"] == out["run_id"] and e["eventType"] == "COMPLETE"]
    facets = {
        o["name"]: o["facets"]["lifecycleStateChange"]["lifecycleStateChange"]
        for o in done[0]["outputs"]
        if "lifecycleStateChange" in o["facets"]
    }
    assert facets == {"curated.products": "ALTER", "curated.events": "ALTER"}

    # the same delivery again adds nothing; a full snapshot (no --append) replaces as before
    again = json.loads(sw("ingest", "--data", str(d2), "--workdir", str(work), "--append", "--json").stdout)
    assert again["tables"]["events"]["rows_curated"] == 0 and again["tables"]["events"]["rows_total"] == 27
    assert again["tables"]["products"]["rows_unchanged"] == 3
    text = sw("ingest", "--data", str(d2), "--workdir", str(work), "--append").stdout
    import re

    assert re.search(r"events +in +13 +inserted +0 +quarantined +13 +of them re-sent +13", text), text
    assert "the table now has 27 rows" in text
    snap = json.loads(sw("ingest", "--data", str(d2), "--workdir", str(work), "--json").stdout)
    # (a snapshot is the whole truth: day 2's catalog alone, its events naming p3-p5 unknown)
    assert snap["tables"]["products"]["rows_curated"] == 3 and snap["tables"]["events"]["rows_curated"] == 8
    assert snap["tables"]["events"]["reasons"] == {"unknown_reference": 4, "duplicate_row": 1}


def _audit_path_exists(work: Path) -> bool:
    return (work / "audit" / "audit.jsonl").exists()


def test_the_shops_one_column_map_serves_every_delivery_shape(tmp_path):
    """One `shelfwise.toml` mapping the catalog export and the web events: an events-only
    delivery (no catalog file, no product columns in the events) is read as events, not refused
    for the catalog's headers; a price feed that leaves out mapped columns updates the price and
    keeps each product's curated title and brand. A full load still refuses a mapped header the
    file lacks (a typo)."""
    toml = (
        '[files]\nproducts = "catalog.csv"\nevents = "web_events.csv"\n'
        '[map.products]\nproduct_id = "SKU Code"\ntitle = "Item Name"\nprice = "Retail Price"\nbrand = "Maker"\n'
        '[map.events]\nuser_id = "Shopper"\nproduct_id = "Item"\ntimestamp = "When"\n'
    )

    def delivery(name: str, files: dict[str, str], drop: str = "") -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "shelfwise.toml").write_text("\n".join(x for x in toml.split("\n") if x != drop))
        for f, text in files.items():
            (d / f).write_text(text)
        return d

    catalog = "SKU Code,Item Name,Retail Price,Maker\nP1,Red Kettle,12.00,Acme\nP2,Blue Kettle,12.00,Bolt\n"
    day1 = delivery(
        "day1",
        {
            "catalog.csv": catalog,
            "web_events.csv": "Shopper,Item,event_type,When\nU1,P1,view,2024-01-05T10:00:00Z\n",
        },
    )
    work = tmp_path / "w"
    Ingestor(work).run(day1)
    day2 = delivery(
        "day2", {"web_events.csv": "Shopper,Item,event_type,When\nU2,P2,view,2024-01-06T10:00:00Z\n"},
        drop='products = "catalog.csv"',
    )  # fmt: skip
    r2 = Ingestor(work, mode="append").run(day2)
    assert r2.tables["events"].rows_curated == 1 and "products" not in r2.tables
    # (a `Brand` column is not the brand the map names, `Maker`: not read by its name either)
    prices = delivery(
        "prices",
        {"catalog.csv": "SKU Code,Retail Price,Brand\nP1,9.50,Other\n"},
        drop='events = "web_events.csv"',
    )
    r3 = Ingestor(work, mode="append").run(prices)
    assert (r3.tables["products"].rows_updated, r3.tables["products"].rows_quarantined) == (1, 0)
    assert any("products.brand = 'Maker' is not in this delivery" in n for n in r3.notes), r3.notes
    assert sorted(curated_rows(work, "SELECT product_id, title, brand, price FROM curated.products")) == [
        ("P1", "Red Kettle", "Acme", 9.5),
        ("P2", "Blue Kettle", "Bolt", 12.0),
    ]
    typo = delivery(
        "typo", {"catalog.csv": "SKU Code,Retail Price\nP1,9.50\n"}, drop='events = "web_events.csv"'
    )
    with pytest.raises(SourceError, match="maps products.title to 'Item Name', which is not a column"):
        Ingestor(tmp_path / "w2").run(typo)


def test_column_map_from_shelfwise_toml_and_map_flags(tmp_path):
    d = tmp_path / "shop"
    d.mkdir()
    (d / "events.csv").write_text(
        "Buyer Ref,Article,Kind,Happened,Seen\n"
        "c1,a1,view,2024-05-01 10:00:00,2024-06-01\nc2,a1,purchase,2024-05-02 10:00:00,2024-06-02\n"
    )
    (d / "shelfwise.toml").write_text(
        '[map.events]\nuser_id = "Buyer Ref"\nproduct_id = "Article"\nevent_type = "Kind"\ntimestamp = "Seen"\n'
    )
    out = json.loads(sw("ingest", "--data", str(d), "--workdir", str(tmp_path / "w1"), "--json").stdout)
    ev = out["tables"]["events"]
    assert ev["rows_curated"] == 2 and ev["column_mapping"]["Seen"] == "timestamp"
    assert out["column_map"]["events"]["timestamp"] == "Seen" and not any(
        "not read" in n for n in out["notes"]
    )
    assert curated_rows(tmp_path / "w1", "SELECT min(timestamp)::DATE::VARCHAR FROM curated.events") == [
        ("2024-06-01",)
    ]
    # a flag overrides the file's entry for the same column
    out = json.loads(
        sw(
            "ingest",
            "--data",
            str(d),
            "--workdir",
            str(tmp_path / "w2"),
            "--map",
            "events.timestamp=Happened",
            "--json",
        ).stdout
    )
    assert out["tables"]["events"]["column_mapping"]["Happened"] == "timestamp"
    assert curated_rows(tmp_path / "w2", "SELECT min(timestamp)::DATE::VARCHAR FROM curated.events") == [
        ("2024-05-01",)
    ]
    # a mapped header the file does not have, an unknown table or column: clear errors
    bad = sw(
        "ingest",
        "--data",
        str(d),
        "--workdir",
        str(tmp_path / "w3"),
        "--map",
        "events.timestamp=Hapened",
        check=False,
    )
    assert bad.returncode == 2 and "maps events.timestamp to 'Hapened', which is not a column" in bad.stderr
    assert "is 'Happened' meant?" in bad.stderr
    for flag, message in (
        ("event.timestamp=Happened", "unknown table 'event' (did you mean 'events'?)"),
        ("events.time_stamp=Happened", "events has no column 'time_stamp' (did you mean 'timestamp'?)"),
        ("events.timestamp", "write TABLE.COLUMN=HEADER"),
    ):
        proc = sw("ingest", "--data", str(d), "--workdir", str(tmp_path / "w4"), "--map", flag, check=False)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    (d / "shelfwise.toml").write_text('[map.orders]\nuser_id = "Buyer Ref"\n')
    with pytest.raises(ShelfwiseError, match=r"unknown table 'orders'"):
        load_column_map(d)
    (d / "shelfwise.toml").write_text('[tables.events]\nuser_id = "Buyer Ref"\n')
    with pytest.raises(ShelfwiseError, match=r"unknown section\(s\) tables"):
        load_column_map(d)


def test_the_missing_column_error_suggests_the_header_and_the_map_to_write(tmp_path):
    d = tmp_path / "shop"
    d.mkdir()
    (d / "events.csv").write_text(
        "Shopper,Article,Action,Shipped On,Placed On,Amount\n"
        "c1,a1,view,3/4/2024,3/2/2024,12.5\nc2,a1,purchase,3/9/2024,3/7/2024,8\n"
    )
    proc = sw("ingest", "--data", str(d), "--workdir", str(tmp_path / "w"), check=False)
    assert proc.returncode == 2
    err = proc.stderr
    assert (
        "missing required column(s) 'user_id'" in err
        and "'timestamp' (likely: 'Placed On' (holds dates" in err
    )
    assert "--map 'events.timestamp=Placed On'" in err
    assert '[map.events]\n    user_id = "Shopper"\n    timestamp = "Placed On"' in err


def test_an_order_lines_export_with_a_map_yields_events_products_and_users(tmp_path):
    d = tmp_path / "shop"
    d.mkdir()
    (d / "export.csv").write_text(
        "Line,Order Ref,Date Ordered,Client Ref,Client Name,Client Email,Tier,SKU,Item Title,Dept,Aisle,"
        "Line Total,Units\n"
        "1,o1,2024-02-01,c1,Ann Lee,ann@x.org,gold,s1,Mug,Kitchen,Cups,20,2\n"
        "2,o1,2024-02-01,c1,Ann Lee,ann@x.org,gold,s2,Pan,Kitchen,Pots,30,1\n"
        "3,o2,2024-02-03,c2,Bo Li,bo@x.org,silver,s1,Mug,Kitchen,Cups,12,1\n"
        "4,o3,2024-02-05,c1,Ann Lee,ann@x.org,platinum,s3,,Garden,,5,1\n"
        # last in the file, first in time: an export is not always in date order
        "5,o0,2024-01-15,c1,Ann Lee,ann@x.org,bronze,s1,Mug (old name),Kitchen,Cups,14,1\n"
    )
    (d / "export.csv").rename(d / "orders.csv")
    (d / "shelfwise.toml").write_text(
        '[map.events]\ntimestamp = "Date Ordered"\nuser_id = "Client Ref"\nproduct_id = "SKU"\n'
        '[map.products]\ntitle = "Item Title"\ncategory = ["Dept", "Aisle"]\n'
    )
    out = json.loads(sw("ingest", "--data", str(d), "--workdir", str(tmp_path / "w"), "--json").stdout)
    ev, pr, us = (out["tables"][t] for t in ("events", "products", "users"))
    assert (ev["rows_in"], ev["rows_curated"]) == (5, 5) and ev["balanced"]
    # s3 has no title: quarantined in products, still a known product for its event; s1 has
    # two titles: one row, its latest line's (it was two rows, one quarantined duplicate_key)
    assert (pr["rows_in"], pr["rows_curated"], pr["reasons"]) == (3, 2, {"missing_required": 1})
    assert pr["derived"].startswith(
        "one row per product id of the order lines in orders.csv, as its latest line"
    )
    assert "1 product id(s) carry more than one title" in pr["derived"]
    assert (us["rows_in"], us["rows_curated"]) == (2, 2) and us["balanced"]
    assert set(us["personal_columns_dropped"]) == {"Client Name", "Client Email"}
    w = tmp_path / "w"
    assert curated_rows(w, "SELECT product_id, title, category, price FROM curated.products ORDER BY 1") == [
        ("s1", "Mug", "Kitchen > Cups", 12.0),  # the median of 20 / 2, 12 / 1 and 14 / 1
        ("s2", "Pan", "Kitchen > Pots", 30.0),
    ]
    assert curated_rows(w, "SELECT DISTINCT event_type FROM curated.events") == [("purchase",)]
    assert curated_rows(w, "SELECT sum(quantity), sum(value) FROM curated.events") == [(6.0, 81.0)]
    users = curated_rows(
        w,
        "SELECT * EXCLUDE (consent_personalization, consent_marketing, consent_updated_at, updated_at) "
        "FROM curated.users "
        "ORDER BY x_tier",
    )
    # c1's latest order (Feb 5) says platinum; the file's last line (an older order) bronze
    assert [u[1:] for u in users] == [("platinum",), ("silver",)]
    cols = {r[0] for r in curated_rows(w, "DESCRIBE curated.users")} | {
        r[0] for r in curated_rows(w, "DESCRIBE raw.users")
    }
    assert not any("name" in c or "email" in c for c in cols)
    blob = json.dumps(curated_rows(w, "SELECT * FROM curated.users"))
    assert "Ann" not in blob and "ann@" not in blob
    assert not {u[0] for u in users} & {"c1", "c2"}  # pseudonymized


def test_the_superstore_export_ingests_into_events_products_and_users(tmp_path):
    src = shared("superstore_sales", "Sample - Superstore.csv")
    d = tmp_path / "shop"
    copy_head(src, d / "orders.csv", 401)
    out = json.loads(sw("ingest", "--data", str(d), "--workdir", str(tmp_path / "w"), "--json").stdout)
    ev, pr, us = (out["tables"][t] for t in ("events", "products", "users"))
    assert all(t["balanced"] for t in (ev, pr, us))
    assert ev["rows_in"] == 400 and ev["rows_curated"] + ev["rows_quarantined"] == 400
    assert ev["column_mapping"]["Order Date"] == "timestamp" and ev["column_mapping"]["Sales"] == "value"
    assert ev["column_mapping"]["Quantity"] == "quantity" and ev["column_mapping"]["Order ID"] == "session_id"
    assert any("an order-lines export" in n for n in out["notes"])
    assert {"Customer Name", "Postal Code"} <= set(us["personal_columns_dropped"])
    w = tmp_path / "w"
    n_products = curated_rows(w, "SELECT count(DISTINCT product_id) FROM curated.events")[0][0]
    assert pr["rows_curated"] == n_products and pr["rows_in"] >= n_products
    cats = curated_rows(w, "SELECT DISTINCT split_part(category, ' > ', 1) FROM curated.products ORDER BY 1")
    assert cats == [("Furniture",), ("Office Supplies",), ("Technology",)]
    assert curated_rows(w, "SELECT count(*) FROM curated.products WHERE NOT price > 0") == [(0,)]
    # the first line: 2 Bush Somerset bookcases for 261.96, no discount
    assert curated_rows(w, "SELECT price FROM curated.products WHERE product_id = 'FUR-BO-10001798'") == [
        (130.98,)
    ]
    user_cols = {r[0] for r in curated_rows(w, "DESCRIBE curated.users")}
    # the users contract's optional consent columns (issue 19) are there, empty: the export has none
    assert user_cols == {"user_id", "x_segment", "x_country", "x_city", "x_state", "x_region"} | {
        "consent_personalization",
        "consent_marketing",
        "consent_updated_at",  # (users contract 1.3.0: when a consent was given, if the file says)
        "updated_at",  # (users contract 1.4.0: when the shop last changed the row, if the file says)
    }
    names = {r[0] for r in curated_rows(w, "SELECT DISTINCT x_segment FROM curated.users")}
    assert names <= {"Consumer", "Corporate", "Home Office"}
    blob = json.dumps(curated_rows(w, "SELECT * FROM curated.users")) + json.dumps(
        curated_rows(w, "SELECT * FROM curated.events LIMIT 400"), default=str
    )
    assert "Claire Gute" not in blob and "CG-12520" not in blob


def test_a_first_delivery_into_an_empty_workdir_and_an_empty_delivery(tmp_path):
    """A delivery into an empty workdir is a first load (all inserted); one without a table file is refused."""
    d = _day1(tmp_path / "d")
    rep = Ingestor(tmp_path / "w", mode="append").run(d)
    ev = rep.tables["events"]
    assert (ev.rows_curated, ev.rows_inserted, ev.rows_unchanged, ev.rows_total) == (20, 20, 0, 20)
    assert _audit_path_exists(tmp_path / "w")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing here")
    with pytest.raises(SourceError, match="a delivery with no table file"):
        Ingestor(tmp_path / "w", mode="append").run(empty)


@pytest.mark.slow
def test_train_with_append_trains_on_the_union_of_the_deliveries(tmp_path):
    from shelfwise.demo import generate_demo
    from shelfwise.serving import Bundle, current_bundle

    full = tmp_path / "full"
    generate_demo(full, products=150, users=60, events=3000, seed=4, faq=False)
    lines = (full / "events.csv").read_text().splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    day1, day2 = tmp_path / "day1", tmp_path / "day2"
    day1.mkdir()
    day2.mkdir()
    for f in full.iterdir():
        # (no queries or judgments: the search ranker is not what this test is about, and
        # fitting it would cost each train ~6 s; no FAQ either (`faq=False`): nor is its encoding)
        if f.name not in ("events.csv", "queries.csv", "judgments.csv") and f.is_file():
            (day1 / f.name).write_bytes(f.read_bytes())
    half = len(body) // 2
    (day1 / "events.csv").write_text(header + "".join(body[:half]))
    (day2 / "events.csv").write_text(header + "".join(body[half - 100 :]))  # 100 lines re-sent
    work = tmp_path / "w"
    fast = ["--models", "popularity,itemknn", "--no-fusion", "--tune-seconds", "0", "--sasrec-seconds", "0"]
    fast += ["--finetune-seconds", "0", "--cross-encoder-seconds", "0", "--refit-seconds", "0", "--json"]
    # day 1 ingested, not trained: no bundle of it is read, only what it curated (a train
    # costs ~25 s of CPU on this shop)
    sw("ingest", "--data", str(day1), "--workdir", str(work))
    first = curated_rows(work, "SELECT count(*) FROM curated.events")[0][0]
    out = json.loads(sw("train", "--data", str(day2), "--workdir", str(work), "--append", *fast).stdout)
    after = Bundle.load(current_bundle(work)).manifest["data_versions"]["events"]["rows"]
    # the run's JSON holds the delivery's accounting, as `ingest --append --json` prints it
    ev = out["ingest"]["tables"]["events"]
    assert ev["mode"] == "append" and ev["balanced"] and ev["rows_unchanged"] >= 100
    assert ev["rows_in"] == ev["rows_curated"] + ev["rows_quarantined"] + ev["rows_withheld"]
    again = json.loads(sw("train", "--data", str(day2), "--workdir", str(work), "--append", *fast).stdout)
    assert again["ingest"] == {"status": "unchanged", "data": str(day2)}
    redelivered = curated_rows(
        work,
        "SELECT count(*) FROM quarantine.rows WHERE table_name = 'events' AND status = 'redelivered'",
    )[0][0]
    assert redelivered >= 100  # the 100 lines re-sent (and exact repeats the demo shop has across the cut)
    total = curated_rows(work, "SELECT count(*) FROM curated.events")[0][0]
    assert after == total > first  # the bundle was trained on the union
    # never added twice: the union holds no event twice
    assert curated_rows(work, "SELECT count(*) FROM (SELECT DISTINCT * FROM curated.events)")[0][0] == total


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_order_lines_in_parquet_and_json_lines(tmp_path, fmt):
    import duckdb

    d = tmp_path / "shop"
    d.mkdir()
    csv = tmp_path / "lines.csv"
    csv.write_text(
        "Order ID,Order Date,Customer ID,Customer Name,Segment,Product ID,Product Name,Category,Sales,Quantity\n"
        "o1,2024-02-01,c1,Ann Lee,Consumer,s1,Mug,Kitchen,20,2\no2,2024-02-03,c2,Bo Li,Corporate,s2,Pan,Kitchen,30,1\n"
        "o3,2024-02-04,c1,Ann Lee,Consumer,s1,Mug,Kitchen,9,1\n"
    )
    out = (d / f"orders.{fmt}").as_posix()
    con = duckdb.connect()
    con.sql(
        f"COPY (SELECT * FROM read_csv('{csv.as_posix()}', all_varchar=true)) TO '{out}'"
        + (" (FORMAT JSON)" if fmt == "jsonl" else "")
    )
    con.close()
    rep = Ingestor(tmp_path / "w").run(d)
    assert {t: (r.rows_in, r.rows_curated) for t, r in rep.tables.items()} == {
        "products": (2, 2),
        "users": (2, 2),
        "events": (3, 3),
    }
    assert rep.tables["users"].personal_columns_dropped == ["Customer Name"]
    assert curated_rows(tmp_path / "w", "SELECT product_id, price FROM curated.products ORDER BY 1") == [
        ("s1", 9.5),
        ("s2", 30.0),
    ]


def test_deliveries_older_than_what_is_curated_are_still_recognised_when_re_sent(tmp_path):
    """Appended versions are not in time order (a day-2 delivery may carry rows older than day
    1's): the re-delivery check compares each delivery with the curated rows of its own time
    range, whatever their order in the table, so a re-sent row is found on every delivery."""
    products = "product_id,title,category,price\n" + "".join(f"p{i},P{i},C,1\n" for i in range(1, 6))

    def delivery(name: str, rows: list[str]) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "products.csv").write_text(products)
        (d / "events.csv").write_text(EVENTS_HEADER + "\n".join(rows) + "\n")
        return d

    day1 = [f"u{i % 4},p{i % 5 + 1},view,2024-03-10T10:{i:02d}:00," for i in range(20)]
    older = [f"u{i % 3},p{i % 5 + 1},click,2024-03-01T09:{i:02d}:00," for i in range(10)]
    oldest = [f"u{i},p1,view,2024-02-20T08:{i:02d}:00," for i in range(3)]
    work = tmp_path / "w"
    Ingestor(work).run(delivery("day1", day1))
    # day 2: rows older than all of day 1, and five of day 1's re-sent among them
    d2 = Ingestor(work, mode="append").run(delivery("day2", older[:5] + day1[15:] + older[5:]))
    ev = d2.tables["events"]
    assert (ev.rows_inserted, ev.rows_unchanged, ev.reasons) == (10, 5, {"duplicate_row": 5})
    # day 3: re-sends of day 2's old rows (curated after day 1's newer ones) and of day 1's,
    # around rows older than anything curated
    d3 = Ingestor(work, mode="append").run(delivery("day3", older[2:6] + oldest + day1[:2] + day1[19:]))
    ev = d3.tables["events"]
    assert (ev.rows_inserted, ev.rows_unchanged, ev.reasons) == (3, 7, {"duplicate_row": 7})
    assert ev.rows_total == 33 and ev.balanced
    assert curated_rows(
        work, 'SELECT count(*), count(DISTINCT ("timestamp", event_type)) FROM curated.events'
    ) == [(33, 33)]


def test_the_missing_event_time_is_suggested_before_a_ship_date():
    """An export whose order time has a header no alias knows ("Placed On") beside a "Ship Date":
    the suggestion (and the ready-made --map line) names the order time, not the shipping."""
    from shelfwise.governance._contracts import CONTRACTS
    from shelfwise.governance._mapping import suggest_columns

    header = ["Order ID", "Ship Date", "Placed On", "Customer ID", "Product ID", "Sales"]
    samples = {
        "Ship Date": ["11/11/2016", "11/12/2016", "6/16/2016"],
        "Placed On": ["11/8/2016", "11/8/2016", "6/12/2016"],
        "Sales": ["261.96", "731.94", "14.62"],
    }
    got = suggest_columns(CONTRACTS["events"], "timestamp", header, samples)
    assert [h for h, _ in got][:2] == ["Placed On", "Ship Date"], got
    # a word that merely contains one ("Membership") is no ship date
    samples["Membership Date"] = samples.pop("Ship Date")
    got = suggest_columns(
        CONTRACTS["events"], "timestamp", [*header[:1], "Membership Date", *header[2:]], samples
    )
    assert {h for h, _ in got[:2]} == {"Placed On", "Membership Date"}, got


def partial_deliveries(d: Path) -> tuple[Path, Path]:
    """Day 1: full products, users and events. Day 2: products with three columns (P1's price
    changed, P2 re-sent as it was, P3 new), users with one profile column, and events that
    re-send day 1's purchase with its order value, re-send a view without its session column
    (as a map naming only the required columns reads it), and add an anonymous view of the
    same moment as a customer's (another event)."""
    day1, day2 = d / "day1", d / "day2"
    day1.mkdir(parents=True)
    day2.mkdir(parents=True)
    (day1 / "products.csv").write_text(
        "product_id,title,category,brand,price,in_stock\n"
        "P1,Red Shoe,Fashion > Shoes,Acme,10.00,false\nP2,Blue Shoe,Fashion > Shoes,Acme,12.00,true\n"
    )
    (day1 / "users.csv").write_text("user_id,segment,country\nU1,regular,DE\nU2,new,FR\n")
    (day1 / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,session_id\n"
        "U1,P1,purchase,2026-01-01T10:05:00Z,O1\nU2,P2,view,2026-01-01T11:00:00Z,S2\n"
    )
    (day2 / "products.csv").write_text(
        "product_id,title,price\nP1,Red Shoe,9.00\nP2,Blue Shoe,12.00\nP3,Green Shoe,5.00\n"
    )
    (day2 / "users.csv").write_text("user_id,segment\nU1,vip\n")
    (day2 / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,session_id,quantity,value\n"
        "U1,P1,purchase,2026-01-01T10:05:00Z,O1,1,10.00\n"  # day 1's purchase, with its value
        "U1,P1,purchase,2026-01-01T10:05:00Z,O9,1,10.00\n"  # another order: a new purchase
        ",P2,view,2026-01-01T11:00:00Z,S2,,\n"  # anonymous: not U2's view
    )
    more = d / "day2b"
    more.mkdir()
    (more / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU2,P2,view,2026-01-01T11:00:00Z\n"
    )
    # day 3: a stock feed without titles (a required column): P1 back in stock; P4 is not in
    # the catalog yet, so it has no title to keep
    stock = d / "day3"
    stock.mkdir()
    (stock / "products.csv").write_text("product_id,in_stock\nP1,true\n P4 ,true\n")
    return day1, day2


def check_partial_deliveries(work: Path, reports: list) -> None:
    _, day2, day2b, day3 = reports
    pr, us, ev = day2.tables["products"], day2.tables["users"], day2.tables["events"]
    assert (pr.rows_inserted, pr.rows_updated, pr.rows_unchanged, pr.reasons) == (
        1,
        1,
        1,
        {"duplicate_row": 1},
    )
    rows = {
        r[0]: r[1:]
        for r in curated_rows(
            work, "SELECT product_id, category, brand, price, in_stock FROM curated.products"
        )
    }
    # the columns day 2 did not send keep their values; the one it sent changed (and day 3's
    # stock feed put P1 back in stock)
    assert rows["P1"] == ("Fashion > Shoes", "Acme", 9.0, True) and rows["P2"] == (
        "Fashion > Shoes",
        "Acme",
        12.0,
        True,
    )
    assert rows["P3"][0] is None and rows["P3"][2] == 5.0
    assert (us.rows_updated, us.rows_unchanged) == (1, 0)
    profiles = sorted(curated_rows(work, "SELECT x_segment, x_country FROM curated.users"))
    assert profiles == [("new", "FR"), ("vip", "DE")]
    assert (ev.rows_curated, ev.reasons) == (2, {"duplicate_row": 1})
    assert (day2b.tables["events"].rows_curated, day2b.tables["events"].reasons) == (0, {"duplicate_row": 1})
    got = curated_rows(
        work, "SELECT session_id, value FROM curated.events WHERE event_type = 'purchase' ORDER BY 1"
    )
    assert got == [("O1", None), ("O9", 10.0)]  # day 1's purchase once; the other order added
    assert curated_rows(work, "SELECT count(*) FROM curated.events")[0][0] == 4
    # the stock feed: P1 keeps its title (and the price day 2 set) and is back in stock; P4,
    # new, is quarantined for its missing title; the report says why
    stock = day3.tables["products"]
    assert (stock.rows_in, stock.rows_updated, stock.rows_inserted, stock.reasons) == (
        2,
        1,
        0,
        {"missing_required": 1},
    )
    assert curated_rows(
        work, "SELECT title, category, price, in_stock FROM curated.products WHERE product_id = 'P1'"
    ) == [("Red Shoe", "Fashion > Shoes", 9.0, True)]
    assert curated_rows(work, "SELECT count(*) FROM curated.products")[0][0] == 3
    assert any("no title column" in n for n in day3.notes), day3.notes


def test_a_partial_delivery_keeps_what_it_does_not_send_and_a_resent_event_stays_one(tmp_path):
    """A keyed table's delivery without some columns updates the columns it has and keeps the
    others (a price-only product file used to blank category, brand and stock); an event
    re-sent with a column more (the order value) or less (no session) is the event curated
    already (`duplicate_row`), while a different order or an anonymous view is another event."""
    day1, day2 = partial_deliveries(tmp_path)
    work = tmp_path / "w"
    reports = [Ingestor(work).run(day1)]
    reports += [Ingestor(work, mode="append").run(d) for d in (day2, tmp_path / "day2b", tmp_path / "day3")]
    check_partial_deliveries(work, reports)


def test_a_delivery_whose_dates_do_not_tell_their_order_reads_them_as_the_shop_did(tmp_path):
    """Day 1's file writes 13/01/2026 (day first, said in a note); day 2's file re-sends the
    02/01/2026 event and adds 03/01/2026, with no field above 12: read day first as day 1 was,
    the re-sent event is recognised (it used to be curated again, dated 1 February) and a note
    says where the order came from. A shop whose files never told reads month first, said too."""
    day1, day2 = tmp_path / "day1", tmp_path / "day2"
    for d in (day1, day2):
        d.mkdir()
        (d / "products.csv").write_text("product_id,title\nP1,Red Shoe\nP2,Blue Shoe\n")
    head = "user_id,product_id,event_type,timestamp,session_id\n"
    (day1 / "events.csv").write_text(
        head + "U1,P1,view,13/01/2026 10:00,S1\nU1,P2,view,02/01/2026 10:00,S1\n"
    )
    (day2 / "events.csv").write_text(
        head + "U1,P2,view,02/01/2026 10:00,S1\nU1,P1,view,03/01/2026 11:00,S1\n"
    )
    work = tmp_path / "w"
    first = Ingestor(work).run(day1)
    assert any("read as day/month/year" in n for n in first.notes)
    second = Ingestor(work, mode="append").run(day2)
    ev = second.tables["events"]
    assert (ev.rows_curated, ev.reasons) == (1, {"duplicate_row": 1})
    assert any("as in an earlier file of this table (day1/events.csv)" in n for n in second.notes), (
        second.notes
    )
    days = sorted(str(r[0])[:10] for r in curated_rows(work, "SELECT timestamp FROM curated.events"))
    assert days == ["2026-01-02", "2026-01-03", "2026-01-13"]
    alone = Ingestor(tmp_path / "w2").run(day2)
    assert any("read month/day/year (no earlier file of this table told either)" in n for n in alone.notes)


@pytest.mark.parametrize(
    ("day2_dates", "read", "days"),
    [
        # an Italian till's delivery after ISO dates up to 4 January: the 5th and the 7th
        (("05/01/2019", "07/01/2019"), "day/month", ["2019-01-05", "2019-01-07"]),
        # a US export after ISO dates up to 4 January: the 5th and the 7th, month first
        (("01/05/2019", "01/07/2019"), "month/day", ["2019-01-05", "2019-01-07"]),
        # its first date reads alike both ways (day = month): the last one tells
        (("01/01/2019", "05/01/2019"), "day/month", ["2019-01-01", "2019-01-05"]),
    ],
)
def test_an_untold_delivery_continues_its_table_from_its_latest_date(tmp_path, day2_dates, read, days):
    """Day 1 writes ISO dates (no order told); day 2's `;` till file writes slash dates with no
    field above 12. Read month first, `05/01/2019` after 2019-01-04 landed in May and passed every
    check; the delivery is read in the order under which it starts nearer the table's latest
    date, and a note says so with both gaps."""
    day1, day2 = tmp_path / "day1", tmp_path / "day2"
    for d in (day1, day2):
        d.mkdir()
        (d / "products.csv").write_text("product_id,title\nP1,Pane\nP2,Latte\n")
    (day1 / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,session_id\n"
        "U1,P1,purchase,2019-01-03,S1\nU1,P2,purchase,2019-01-04,S1\n"
    )
    (day2 / "events.csv").write_text(
        "user_id;product_id;event_type;timestamp;session_id\n"
        + "".join(f"U2;P1;purchase;{d};S2\n" for d in day2_dates)
    )
    work = tmp_path / "w"
    Ingestor(work).run(day1)
    second = Ingestor(work, mode="append").run(day2)
    assert second.tables["events"].rows_curated == 2
    said = [n for n in second.notes if "day or month first" in n]
    assert len(said) == 1 and f"read {read}/year: this delivery then runs from {min(days)} to {max(days)}" in said[0], said  # fmt: skip
    assert "continuing the table's latest date (2019-01-04)" in said[0]
    got = sorted(str(r[0])[:10] for r in curated_rows(work, "SELECT timestamp FROM curated.events"))
    assert got == sorted(["2019-01-03", "2019-01-04", *days])
    # remembered: the table's next untold file is read alike, said as coming from this one
    day3 = tmp_path / "day3"
    day3.mkdir()
    (day3 / "events.csv").write_text(
        f"user_id,product_id,event_type,timestamp,session_id\nU3,P2,purchase,{day2_dates[0]},S3\n"
    )
    third = Ingestor(work, mode="append").run(day3)
    assert any("as in an earlier file of this table (day2/events.csv)" in n for n in third.notes), third.notes


def test_a_bad_row_sent_again_is_quarantined_once_open(tmp_path):
    """A delivery re-sent whole: its bad rows are counted in its quarantined rows again (rows in
    = added + quarantined), but the quarantine holds each one open once; the copies are
    `redelivered` (they used to be a second open row each, and a third, ...)."""
    from shelfwise.governance import Quarantine

    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title\nP1,Red Shoe\n")
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n"
        "U1,P1,view,2026-01-01T10:00:00Z\nU1,P1,teleport,2026-01-01T10:01:00Z\nU2,P9,view,2026-01-01T10:02:00Z\n"
    )
    work = tmp_path / "w"
    for n in range(3):
        rep = Ingestor(work, mode="append").run(d)
        # the first load adds the good row; each later one re-delivers it (duplicate_row)
        assert rep.tables["events"].rows_quarantined == (2 if n == 0 else 3)
    ev = rep.tables["events"]
    assert ev.balanced and ev.reasons == {"duplicate_row": 1, "invalid_value": 1, "unknown_reference": 1}
    rows = Quarantine(work).list("events", None, None, 100, 0)
    open_rows = [r for r in rows if r["status"] == "open"]
    assert sorted(r["reason"] for r in open_rows) == ["invalid_value", "unknown_reference"]
    assert sum(r["status"] == "redelivered" for r in rows) == 6  # 2 re-sent bad rows x 2 + 2 duplicates


def robot_deliveries(d: Path) -> tuple[Path, Path]:
    """Day 1: a customer's view and a robot's 130 views within 60 s (quarantined as robot
    traffic); day 2 re-sends 60 of the robot's views (fewer than the window allows) and a
    customer's new view."""
    head = "user_id,product_id,event_type,timestamp,session_id\n"
    bot = [f"BOTX,P{i % 2 + 1},view,2026-01-01T10:00:{i % 60:02d}.{i // 60:03d}Z,SB\n" for i in range(130)]
    day1, day2 = d / "b1", d / "b2"
    for p in (day1, day2):
        p.mkdir(parents=True)
        (p / "products.csv").write_text("product_id,title\nP1,Red Shoe\nP2,Blue Shoe\n")
    (day1 / "events.csv").write_text(head + "U1,P1,view,2026-01-01T11:00:00Z,S1\n" + "".join(bot))
    (day2 / "events.csv").write_text(head + "".join(bot[:60]) + "U1,P2,view,2026-01-02T11:00:00Z,S1\n")
    return day1, day2


def check_robot_deliveries(work: Path, reports: list) -> None:
    first, second = (r.tables["events"] for r in reports)
    assert first.reasons == {"bot_traffic": 130} and first.rows_curated == 1
    # the re-sent part of the robot's burst is robot traffic still (it used to be curated)
    assert (second.rows_curated, second.reasons) == (1, {"bot_traffic": 60})
    users = {r[0] for r in curated_rows(work, "SELECT DISTINCT user_id FROM curated.events")}
    assert len(users) == 1  # U1 alone
    details = curated_rows(
        work,
        f"SELECT DISTINCT detail, status FROM quarantine.rows WHERE run_id = '{reports[1].run_id}' "
        "AND table_name = 'events'",
    )
    assert details == [("sent again: an earlier load quarantined this event as robot traffic", "redelivered")]


def test_a_robots_events_sent_again_are_robot_traffic_again(tmp_path):
    day1, day2 = robot_deliveries(tmp_path)
    work = tmp_path / "w"
    reports = [Ingestor(work, mode="append").run(d) for d in (day1, day2)]
    check_robot_deliveries(work, reports)


def test_a_re_sent_part_of_a_burst_still_counts_towards_the_burst(tmp_path):
    """Day 2 re-sends 90 of the robot's quarantined views and adds 40 new ones in the same
    minute: the window sees all 130 (over the limit), so the 40 new views are robot traffic too
    (flagging the re-sent rows first left the window 40, and curated them)."""
    day1, _ = robot_deliveries(tmp_path)
    day2 = tmp_path / "b2x"
    day2.mkdir()
    (day2 / "products.csv").write_text("product_id,title\nP1,Red Shoe\nP2,Blue Shoe\n")
    lines = (day1 / "events.csv").read_text().splitlines()
    bot = [x for x in lines if x.startswith("BOTX")]
    fresh = [f"BOTX,P1,view,2026-01-01T10:00:{i:02d}.500Z,SB" for i in range(40)]
    (day2 / "events.csv").write_text("\n".join([lines[0], *bot[:90], *fresh]) + "\n")
    work = tmp_path / "w"
    Ingestor(work, mode="append").run(day1)
    ev = Ingestor(work, mode="append").run(day2).tables["events"]
    assert (ev.rows_curated, ev.reasons) == (0, {"bot_traffic": 130})


def test_one_stray_date_does_not_turn_a_tables_date_order(tmp_path):
    """A month-first table (day 1: 01/13/2026) gets a day-2 file with one typo (13/01/2026) among
    month-first dates that do not tell: the table's order holds (the typo fails its check) and
    stays recorded, so day 3's ambiguous dates are still read month first."""
    days = [tmp_path / f"d{i}" for i in (1, 2, 3)]
    head = "user_id,product_id,event_type,timestamp\n"
    rows = {
        0: ["U1,P1,view,01/13/2026 10:00", "U1,P1,view,02/03/2026 10:00"],
        1: [
            "U2,P1,view,13/01/2026 10:00",
            *[f"U{i},P1,view,02/0{i % 9 + 1}/2026 10:00" for i in range(3, 9)],
        ],
        2: ["U9,P1,view,03/04/2026 10:00"],
    }
    for i, d in enumerate(days):
        d.mkdir()
        (d / "products.csv").write_text("product_id,title\nP1,Red Shoe\n")
        (d / "events.csv").write_text(head + "\n".join(rows[i]) + "\n")
    work = tmp_path / "w"
    Ingestor(work, mode="append").run(days[0])
    second = Ingestor(work, mode="append").run(days[1])
    assert second.tables["events"].reasons == {"unparseable_timestamp": 1}
    assert any("kept month first" in n for n in second.notes), second.notes
    Ingestor(work, mode="append").run(days[2])
    got = curated_rows(work, "SELECT timestamp FROM curated.events WHERE timestamp >= '2026-03-01'")
    assert [str(r[0])[:10] for r in got] == ["2026-03-04"]  # March 4th, month first


def test_an_order_a_file_shows_overrules_one_guessed_and_a_guess_never_overrules_a_shown_one(tmp_path):
    """Day 1 writes ISO dates; day 2's untold slash dates are read day first, the reading under
    which they continue the table (a guess); day 3 (untold) is read as day 2 was. Day 4 shows
    month first with one date (01/13/2019): a guessed order was remembered like a shown one, so
    that date was overruled as a typo and quarantined. Now the shown order wins, with a warning
    naming the guess and the loads it read; day 5, untold and nearer day first, is read month
    first as day 4 showed: a guess never overrules a shown order."""
    head = "user_id,product_id,event_type,timestamp,session_id\n"
    rows = {
        1: ["U1,P1,purchase,2019-01-03,S1", "U1,P2,purchase,2019-01-04,S1"],
        2: ["U2,P1,purchase,05/01/2019,S2", "U2,P2,purchase,07/01/2019,S2"],
        3: ["U3,P1,purchase,02/01/2019,S3"],
        4: ["U4,P1,purchase,01/13/2019,S4", "U4,P2,purchase,02/03/2019,S4"],
        5: ["U5,P1,purchase,10/02/2019,S5"],
    }
    work = tmp_path / "w"
    reports = {}
    for i, lines in rows.items():
        d = tmp_path / f"d{i}"
        d.mkdir()
        (d / "products.csv").write_text("product_id,title\nP1,Pane\nP2,Latte\n")
        (d / "events.csv").write_text(head + "\n".join(lines) + "\n")
        reports[i] = Ingestor(work, mode="append").run(d)
    assert any("read day/month/year: this delivery then runs" in n for n in reports[2].notes)
    ev = reports[4].tables["events"]
    assert (ev.rows_curated, ev.reasons) == (2, {}), (ev.rows_curated, ev.reasons, reports[4].notes)
    (said,) = [w for w in reports[4].warnings if "guessed" in w]
    assert "1 date(s) show month first (e.g. 01/13/2019)" in said, said
    assert "guessed from the nearest dates of d2/events.csv" in said
    assert "2 load(s): d2/events.csv (run " in said and "d3/events.csv (run " in said
    assert not any("kept day first" in n for n in reports[4].notes)
    assert any(
        "as in an earlier file of this table (d2/events.csv) (itself guessed" in n for n in reports[3].notes
    )
    assert any("as in an earlier file of this table (d4/events.csv)" in n for n in reports[5].notes), reports[
        5
    ].notes
    got = sorted(str(r[0])[:10] for r in curated_rows(work, "SELECT timestamp FROM curated.events"))
    # day 2 and day 3 as the guess read them; day 4 as it showed; day 5 month first (2 October)
    assert got == ["2019-01-02", "2019-01-03", "2019-01-04", "2019-01-05", "2019-01-07",
                   "2019-01-13", "2019-02-03", "2019-10-02"]  # fmt: skip


def test_a_header_that_repeats_a_name_is_read_at_its_first_column_and_said(tmp_path):
    """`title,title` or `value,value` in an export: the first column is read (the last one was,
    silently), and the load's notes say which was ignored."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title,title,price\nP1,Red Shoe,Other,10\n")
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,value,value\nU1,P1,purchase,2024-01-01T10:00:00Z,5,999\n"
    )
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    assert curated_rows(work, "SELECT title FROM curated.products") == [("Red Shoe",)]
    assert curated_rows(work, "SELECT value FROM curated.events") == [(5.0,)]
    said = [n for n in report.notes if "repeats" in n]
    assert len(said) == 2 and "columns 2 and 3" in said[0] and "columns 5 and 6" in said[1], said


def test_a_required_column_may_be_left_out_only_by_a_delivery_to_a_curated_table(tmp_path):
    """A first (or full) load without titles is refused as before; so is an appended delivery
    to a table not curated yet."""
    import pytest

    from shelfwise.errors import SourceError

    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text("product_id,price\nP1,10\n")
    with pytest.raises(SourceError, match="missing required column"):
        Ingestor(tmp_path / "w").run(d)
    with pytest.raises(SourceError, match="missing required column"):
        Ingestor(tmp_path / "w2", mode="append").run(d)


def test_a_products_map_applies_to_the_products_file_when_there_is_no_users_file(tmp_path):
    """With products.csv and events.csv but no users file, the users are derived from the events
    file: the column map's products entries name the products file's headers (README's own
    `[map.products]` example), not the events file's. It was refused as "not a column of this
    file (the products are read from it)"."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title,Cat A,Cat B\nP1,Red Shoe,Fashion,Shoes\n")
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    (d / "shelfwise.toml").write_text('[map.products]\ncategory = ["Cat A", "Cat B"]\n')
    work = tmp_path / "w"
    Ingestor(work).run(d)
    assert curated_rows(work, "SELECT category FROM curated.products") == [("Fashion > Shoes",)]


def test_personal_data_in_a_kept_profile_column_is_masked(tmp_path, engine=None):
    """An e-mail or phone number under a name that does not sound personal (`Reach`, `Notes`)
    is masked as in events text; a handle column (`Username`) is dropped as a name is."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "users.csv").write_text(
        "user_id,Reach,Username,Notes,Email,Tier,Signup,Seen,Spend\n"
        "U1,jane@example.com,jdoe,call 555-987-6543 or jane@example.com,jane@example.com,gold,"
        '2023-05-01,2023-06-15T10:00:00Z,"1,234,567.50"\n'
        "U2,+49 30 1234567,,,,silver,05/01/2024,05/01/2024 10:00,12.500.000\n"
    )
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    work = tmp_path / "w"
    report = Ingestor(work, engine=engine(work) if engine else None).run(d)
    assert set(report.tables["users"].personal_columns_dropped) == {"Email", "Username"}
    rows = curated_rows(work, "SELECT x_reach, x_notes, x_tier, x_signup, x_seen, x_spend FROM curated.users")
    # dates, times and grouped numbers are no personal data: kept as they are
    assert sorted(rows, key=str) == sorted(
        [
            (
                "[email]",
                "call [phone] or [email]",
                "gold",
                "2023-05-01",
                "2023-06-15T10:00:00Z",
                "1,234,567.50",
            ),
            ("[phone]", None, "silver", "05/01/2024", "05/01/2024 10:00", "12.500.000"),
        ],
        key=str,
    ), rows
    assert "jane" not in str(curated_rows(work, "SELECT * FROM curated.users"))


def test_long_numbers_that_are_no_card_numbers_are_kept(tmp_path, engine=None):
    """Shopify's 13-digit `Customer ID` was masked `[card]` for every customer: a column of ids
    keeps its digits whatever their check digit, and elsewhere a 13-19 digit number that fails
    the Luhn check every card number passes (an EAN-13 barcode) is kept; one that passes it, or
    a card number written in groups, is still masked."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "users.csv").write_text(
        "user_id,Customer ID,Barcode,Memo\n"
        "U1,7000000000003,4006381333931,4111 1111 1111 1111\n"  # the id and the card pass Luhn
        "U2,7000000000000,4111111111111111,paid with 4111111111111111\n"
    )
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    work = tmp_path / "w"
    Ingestor(work, engine=engine(work) if engine else None).run(d)
    rows = curated_rows(work, "SELECT x_customer_id, x_barcode, x_memo FROM curated.users ORDER BY 1")
    assert rows == [
        ("7000000000000", "[card]", "paid with [card]"),
        ("7000000000003", "4006381333931", "[card]"),
    ], rows


def test_personal_columns_are_known_by_their_words_run_together(tmp_path):
    """`Post Code` is a postcode (the hint list had `postcode` and `postal_code` only), `Tax ID`
    a national identifier, latitude and longitude a place as precise as an address: dropped;
    a phone number in one run inside a kept column is masked."""
    from shelfwise.governance._contracts import Classification, classify_extra_column

    d = tmp_path / "d"
    d.mkdir()
    (d / "users.csv").write_text(
        "user_id,Post Code,Postal Code,Tax ID,Latitude,Longitude,Gender,Notes,Segment\n"
        "U1,SW1A 1AA,SW1A 1AA,DE123456789,51.501,-0.142,f,ring 07700900123 after 6,Corporate\n"
    )
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    dropped = set(report.tables["users"].personal_columns_dropped)
    assert dropped == {"Post Code", "Postal Code", "Tax ID", "Latitude", "Longitude"}
    rows = curated_rows(work, "SELECT * FROM curated.users")
    assert "SW1A" not in str(rows) and "DE123456789" not in str(rows) and "51.501" not in str(rows)
    assert curated_rows(work, "SELECT x_notes, x_segment FROM curated.users") == [
        ("ring [phone] after 6", "Corporate")
    ]
    for kept in ("Segment", "Region", "City", "Ship Mode", "Discount", "Profit", "Category", "Flat Rate"):
        assert classify_extra_column(kept) is Classification.INTERNAL, kept
    for personal in ("TaxID", "vat_number", "GeoLocation", "lng", "Driver License"):
        assert classify_extra_column(personal) is Classification.PERSONAL, personal


def split_burst_deliveries(d: Path) -> tuple[Path, Path]:
    """A robot's 150 views within 60 s that the export splits at midnight: 80 on day 1, 70 on
    day 2 (each part under the limit of 120). A customer's 80 views in the same minute on day 1,
    which day 2 re-sends with 30 new ones (110 distinct: a human's busy minute, not a robot's);
    a third user's 100 views on day 1 and 100 an hour later on day 2 (never 120 in a window)."""
    head = "user_id,product_id,event_type,timestamp,session_id\n"

    def views(user: str, start: str, n: int, step_ms: int) -> list[str]:
        from datetime import datetime, timedelta

        t0 = datetime.fromisoformat(start)
        return [
            f"{user},P{i % 2 + 1},view,{(t0 + timedelta(milliseconds=i * step_ms)).isoformat()}Z,S{user}\n"
            for i in range(n)
        ]

    bot = views("BOTX", "2026-01-01T23:59:20", 150, 300)  # 45 s in all
    busy = views("BUSY", "2026-01-01T23:58:00", 110, 500)
    calm = views("CALM", "2026-01-01T22:00:00", 100, 500) + views("CALM", "2026-01-01T23:00:00", 100, 500)
    day1, day2 = d / "s1", d / "s2"
    for p in (day1, day2):
        p.mkdir(parents=True)
        (p / "products.csv").write_text("product_id,title\nP1,Red Shoe\nP2,Blue Shoe\n")
    (day1 / "events.csv").write_text(head + "".join(bot[:80] + busy[:80] + calm[:100]))
    (day2 / "events.csv").write_text(head + "".join(bot[80:] + busy + calm[100:]))
    return day1, day2


def check_split_burst(work: Path, reports: list) -> None:
    first, second = (r.tables["events"] for r in reports)
    assert first.reasons == {} and first.rows_curated == 260
    # day 2: the robot's 70 (150 in its window with day 1's 80) are robot traffic; the busy
    # customer's re-sent 80 are recognised, their 30 new ones curated; the calm user's 100 curated
    assert second.reasons == {"bot_traffic": 70, "duplicate_row": 80}, second.reasons
    assert second.rows_curated == 130
    details = curated_rows(
        work,
        f"SELECT DISTINCT detail FROM quarantine.rows WHERE run_id = '{reports[1].run_id}' "
        "AND reason = 'bot_traffic'",
    )
    assert details == [("user made 150 events within 60 s (with events an earlier load curated)",)]


def test_a_robots_burst_split_across_two_deliveries_is_one_burst(tmp_path):
    days = split_burst_deliveries(tmp_path)
    work = tmp_path / "w"
    check_split_burst(work, [Ingestor(work, mode="append").run(d) for d in days])


def test_an_order_lines_export_beside_a_products_file_still_yields_its_customers(tmp_path):
    """A directory with its own catalog and an order-lines export, no users file: the customers'
    attributes come from the export (they were derived only together with the products), and
    the catalog is the products file's, not the export's."""
    d = tmp_path / "shop"
    d.mkdir()
    (d / "catalog.csv").write_text("product_id,title,price\ns1,Blue Mug,9.5\ns2,Pan,30\n")
    (d / "orders.csv").write_text(
        "Order Date,Customer ID,Customer Name,Segment,Product ID,Product Name,Sales,Quantity\n"
        "2024-02-01,c1,Ann Lee,Consumer,s1,Mug,20,2\n"
        "2024-02-03,c2,Bo Li,Corporate,s2,Pan,30,1\n"
        "2024-02-05,c1,Ann Lee,Home Office,s1,Mug,10,1\n"
    )
    (d / "shelfwise.toml").write_text('[files]\nproducts = "catalog.csv"\nevents = "orders.csv"\n')
    w = tmp_path / "w"
    report = Ingestor(w).run(d)
    assert set(report.tables) == {"products", "events", "users"}
    assert report.tables["users"].rows_curated == 2
    assert not report.tables["products"].derived and report.tables["users"].derived
    assert curated_rows(w, "SELECT title FROM curated.products ORDER BY 1") == [("Blue Mug",), ("Pan",)]
    segments = curated_rows(w, "SELECT x_segment FROM curated.users ORDER BY 1")
    assert segments == [("Corporate",), ("Home Office",)]  # c1's last line
    blob = json.dumps(curated_rows(w, "SELECT * FROM curated.users"))
    assert "Ann" not in blob and "Bo Li" not in blob


def test_a_plain_events_file_beside_a_mapped_catalog_yields_no_customers(tmp_path):
    """The products file's own title header in the column map (`[map.products] title = "Name"`)
    does not make a plain events file an order-lines export: no users are derived from it."""
    d = tmp_path / "shop"
    d.mkdir()
    (d / "products.csv").write_text("sku,Name\ns1,Mug\n")
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,country\nU1,s1,view,2024-02-01T10:00:00Z,DE\n"
    )
    (d / "shelfwise.toml").write_text('[map.products]\nproduct_id = "sku"\ntitle = "Name"\n')
    report = Ingestor(tmp_path / "w").run(d)
    assert set(report.tables) == {"products", "events"}


def test_an_order_lines_delivery_orders_its_dates_as_the_table_read_them_before(tmp_path):
    """(From a review.) A customer's attributes are their latest order's: a day-first shop's
    delivery whose dates are all <= 12 (`01/03/2024`, `12/02/2024`) is ordered day first, as
    the events table's earlier files told, not month first (which made Dec 2 the latest)."""
    head = "Order ID,Order Date,Customer ID,Tier,Product ID,Product Name,Sales,Quantity\n"
    day1, day2 = tmp_path / "d1", tmp_path / "d2"
    day1.mkdir()
    day2.mkdir()
    (day1 / "orders.csv").write_text(head + "o1,25/01/2024,c1,gold,s1,Mug,10,1\n")  # day first: told
    # the later order (1 March) first in the file, then 12 February
    (day2 / "orders.csv").write_text(
        head + "o3,01/03/2024,c1,platinum,s1,Mug,10,1\no2,12/02/2024,c1,silver,s1,Mug,10,1\n"
    )
    work = tmp_path / "w"
    sw("ingest", "--data", str(day1), "--workdir", str(work))
    sw("ingest", "--data", str(day2), "--workdir", str(work), "--append")
    tiers = curated_rows(work, "SELECT x_tier FROM curated.users")
    assert tiers == [("platinum",)], tiers


def test_older_order_lines_delivered_later_do_not_overwrite_newer_attributes(tmp_path, engine=None):
    """Order lines are not sent in date order (a late export, a catch-up of last year): a
    delivery whose lines for a product or a customer are older than their curated purchases
    leaves their rows as the later orders said them; a later line updates them."""
    head = "Order ID,Order Date,Customer ID,Segment,Product ID,Product Name,Sales,Quantity\n"

    def day(name: str, *lines: str) -> Path:
        d = tmp_path / name
        d.mkdir()
        (d / "orders.csv").write_text(head + "".join(x + "\n" for x in lines))
        return d

    work = tmp_path / "w"
    make = (lambda: engine(work)) if engine else (lambda: None)
    Ingestor(work, engine=make()).run(day("d1", "O-2,2017-06-01,C1,Corporate,P1,Kettle NEW NAME,20,1"))
    late = Ingestor(work, engine=make(), mode="append").run(
        day("d2", "O-1,2015-01-01,C1,Consumer,P1,Kettle old name,10,1", "O-3,2015-01-02,C2,Home,P2,Mug,5,1")
    )
    assert any("1 product(s) of these order lines keep their curated products row" in n for n in late.notes)
    assert sorted(curated_rows(work, "SELECT product_id, title FROM curated.products")) == [
        ("P1", "Kettle NEW NAME"),
        ("P2", "Mug"),
    ]
    assert sorted(r[0] for r in curated_rows(work, "SELECT x_segment FROM curated.users")) == [
        "Corporate",
        "Home",
    ]
    assert curated_rows(work, "SELECT count(*) FROM curated.events") == [(3,)]  # every order line is an event
    # a purchase that says nothing of the product or the customer (a plain events file, a served
    # event) does not hold back a later order line: only the order lines' own dates count
    web = tmp_path / "web"
    web.mkdir()
    (web / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nC1,P1,purchase,2019-01-01T00:00:00Z\n"
    )
    Ingestor(work, engine=make(), mode="append").run(web)
    Ingestor(work, engine=make(), mode="append").run(
        day("d3", "O-4,2018-03-01,C1,Consumer,P1,Kettle 2018,30,1")
    )
    assert sorted(curated_rows(work, "SELECT product_id, title FROM curated.products")) == [
        ("P1", "Kettle 2018"),
        ("P2", "Mug"),
    ]
    assert sorted(r[0] for r in curated_rows(work, "SELECT x_segment FROM curated.users")) == [
        "Consumer",
        "Home",
    ]
    # the dates are kept by pseudonym (never a raw id), and an erasure takes the customer's
    from shelfwise.governance._erase import erase_user

    keys = [r[0] for r in curated_rows(work, "SELECT key FROM meta.derived_as_of WHERE table_name = 'users'")]
    assert len(keys) == 2 and all(k.startswith("u_") for k in keys)
    erase_user(work, "C1")
    assert len(curated_rows(work, "SELECT key FROM meta.derived_as_of WHERE table_name = 'users'")) == 1


def test_personal_columns_are_known_in_other_languages_and_short_forms(tmp_path):
    """A German users export (`Vorname`, `Nachname`, `Adresse`, `PLZ`, `Geburtsdatum`), a
    shipping address, a religion: all reached the curated layer and analysts' exports."""
    from shelfwise.governance._contracts import Classification, classify_extra_column

    d = tmp_path / "d"
    d.mkdir()
    (d / "users.csv").write_text(
        "user_id,Vorname,Nachname,Adresse,PLZ,Geburtsdatum,Ship To,Religion,Segment\n"
        "U1,Anna,Schmidt,Hauptstr. 5,10115,1980-05-04,5 Elm Rd,catholic,gold\n"
    )
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    assert set(report.tables["users"].personal_columns_dropped) == {
        "Vorname", "Nachname", "Adresse", "PLZ", "Geburtsdatum", "Ship To", "Religion",
    }  # fmt: skip
    assert "Schmidt" not in str(curated_rows(work, "SELECT * FROM curated.users"))
    for personal in ("Prénom", "Straße", "Código Postal", "Cognome", "Tel", "Cell", "Addr1", "Billing",
                     "House Number", "Geohash", "Device ID", "Ethnicity", "Health", "Voornaam"):  # fmt: skip
        assert classify_extra_column(personal) is Classification.PERSONAL, personal
    for kept in ("Gender", "Age", "Country", "Language", "Loyalty Tier", "Capacity", "Nominal Plan",
                 # (the review's: a hint as a word of another name means something else)
                 "Nombre de commandes", "times_called", "billing_cycle", "free_shipping_member",
                 "health_score", "portable_device_owner", "price_cap", "contact_preference"):  # fmt: skip
        assert classify_extra_column(kept) is Classification.INTERNAL, kept


def test_a_missing_product_id_is_never_suggested_from_the_title_column():
    """`Product ID` renamed `Prod`: the advice offered `Product Name` first (it "names one") and
    the ready-made --map would have made titles the ids; a header that describes (a name, a
    title, a category) is no id."""
    from shelfwise.governance._contracts import CONTRACTS
    from shelfwise.governance._mapping import suggest_columns

    header = ["Order ID", "Order Date", "Customer ID", "Customer Name", "Prod", "Product Name", "Category"]
    got = suggest_columns(CONTRACTS["events"], "product_id", header, {}, used=header[:3])
    assert [h for h, _ in got] == ["Prod"], got
    got = suggest_columns(CONTRACTS["events"], "user_id", ["Customer Name", "Client No"], {})
    assert [h for h, _ in got] == ["Client No"], got


def test_a_failed_load_publishes_nothing(tmp_path, engine=None):
    """A load that stops at the events file (its map forgot a column) had published products and
    users and quarantined their bad rows under the failed run: the next load counted those rows
    as re-sent ("check passed: 0 of 2 new rows quarantined") for a catalog half of which is bad.
    The failed run leaves no version, quarantine row or raw row; the corrected load judges
    every row as new."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title\nP1,Red Shoe\nP2,\nP3,Blue Shoe\nP4,\n")
    (d / "users.csv").write_text("user_id,Tier\nU1,gold\n")
    (d / "events.csv").write_text(
        "Customer,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    work = tmp_path / "w"

    def run():
        return Ingestor(work, engine=engine(work) if engine else None).run(d)

    with pytest.raises(SourceError, match="missing required column"):
        run()
    held = "SELECT (SELECT count(*) FROM meta.table_versions), (SELECT count(*) FROM quarantine.rows)"
    assert curated_rows(work, held) == [(0, 0)]
    assert curated_rows(
        work, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'curated'"
    ) == [(0,)]
    assert curated_rows(work, "SELECT status FROM meta.runs") == [("FAIL",)]
    (d / "shelfwise.toml").write_text('[map.events]\nuser_id = "Customer"\n')
    products = run().tables["products"]
    assert (products.rows_quarantined, products.rows_redelivered) == (2, 0)
    assert products.check().verdict == "failed"
    assert curated_rows(work, "SELECT table_name, version FROM meta.table_versions ORDER BY 1") == [
        ("events", 1),
        ("products", 1),
        ("users", 1),
    ]


def test_a_resent_text_that_lost_its_letters_to_an_encoding_error_keeps_the_curated_text(
    tmp_path, engine=None
):
    """A catalog re-sent through a tool that wrote it in a code page without `é` (`Caf? cr?me`)
    or read it as another (`Un caf\ufffd doux`) overwrote the good curated text in an --append
    upsert. Such a value keeps the curated text, counted in one warning with an example; its
    row's other changes (a price) are taken; a new title (holding a `?` or not) replaces it."""

    def run(name: str, catalog: str, mode: str = "replace"):
        d = tmp_path / name
        d.mkdir()
        (d / "products.csv").write_text(catalog, encoding="utf-8")
        return Ingestor(work, mode=mode, engine=engine(work) if engine else None).run(d)

    work = tmp_path / "w"
    run(
        "day1",
        "product_id,title,description,price\np1,Café crème,Un café doux,5\np2,Thé vert,Thé,3\np3,Crêpe,Sucrée,4\n",
    )
    report = run(
        "day2",
        "product_id,title,description,price\n"
        "p1,Caf? cr?me,Un caf\ufffd doux,6\np2,Thé noir?,Thé,3\np3,Cr??pe,Sucr?e,4\n",
        mode="append",
    )
    got = curated_rows(work, "SELECT product_id, title, description, price FROM curated.products ORDER BY 1")
    assert got == [
        ("p1", "Café crème", "Un café doux", 6.0),
        ("p2", "Thé noir?", "Thé", 3.0),
        ("p3", "Crêpe", "Sucrée", 4.0),
    ]
    [warning] = [w for w in report.warnings if "encoding error" in w]
    assert warning.startswith("products.csv: 4 text value(s) kept as curated")
    assert "e.g. title 'Caf? cr?me' for 'Café crème'" in warning
    pr = report.tables["products"]
    assert (pr.rows_updated, pr.rows_unchanged) == (2, 1)  # (p3 changed nothing but its lost letters)


@pytest.mark.parametrize(
    ("incoming", "curated", "lost"),
    [
        ("Caf? cr?me", "Café crème", True),
        ("Caf\ufffd", "Café", True),
        ("Caf??", "Café", True),  # (`é` as UTF-8 bytes read one by one)
        ("Caf? ?", "Café ?", True),
        ("Cafe creme", "Café crème", False),  # (letters changed, none lost: a new text)
        ("Tea pot?", "Tea pot", False),
        ("Caf?", "Cafe", False),  # (an ASCII letter is no encoding loss)
        ("Cafés?", "Café", False),
        ("New title?", "Café", False),
    ],
)
def test_which_texts_lost_letters_to_an_encoding_error(incoming, curated, lost):
    from shelfwise.governance._text import lost_to_encoding

    assert lost_to_encoding(incoming, curated) is lost
