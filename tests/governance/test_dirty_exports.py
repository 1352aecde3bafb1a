"""What shops' exports really look like, through `shelfwise ingest` as a new user runs it: a
spreadsheet's UTF-16 catalog with inch marks and decimal commas, an events export with its own
column names, day-first dates, ids written as floats, "nan" users, a broken quote, and a file the
command does not read. Every row is accounted for, every repair is said, nothing crashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shelfwise.errors import SourceError
from shelfwise.governance import Ingestor, Quarantine
from tests.cli.test_cli import sw
from tests.conftest import curated_rows

PRODUCTS = (
    "Product ID\tTitle\tPrice\tIn Stock\n"
    '101\t12" pizza pan\t12,99\tin stock\n'
    "102\tKüchenmesser\t1.299,00\tout of stock\n"
    "103\tTea\tN/A\tyes\n"
    "104\tGift card\tfree\tyes\n"
)
EVENTS = [
    "userId,itemId,eventType,eventTime,Price Paid",
    "u1,101.0,View,25/01/2024 10:00,",
    'u1,102,purchase,25/01/2024 10:05,"1.299,00"',
    'u2,101,view,"03/02/2024 09:00",',
    "nan,101,view,03/02/2024 09:01,",
    'u3,"101,view,03/02/2024 09:02,',  # a quote that never closes
    "u3,103,click,04/02/2024 11:00,",
    "u3,104,view,20240204,",
]


def _write(data: Path) -> None:
    data.mkdir()
    (data / "Products.csv").write_bytes(PRODUCTS.encode("utf-16"))
    (data / "events.csv").write_bytes("\r\n".join(EVENTS).encode() + b"\r\n")
    (data / "events_2023.csv").write_text("userId,itemId\n")


def test_a_dirty_export_through_the_cli(tmp_path):
    data, work = tmp_path / "data", tmp_path / "work"
    _write(data)
    out = json.loads(sw("ingest", "--data", str(data), "--workdir", str(work), "--json").stdout)
    prods, events = out["tables"]["products"], out["tables"]["events"]
    assert (prods["rows_in"], prods["rows_curated"], prods["reasons"]) == (4, 3, {"invalid_type": 1})
    assert prods["column_mapping"] == {
        "Product ID": "product_id",
        "Title": "title",
        "Price": "price",
        "In Stock": "in_stock",
    }
    assert events["rows_in"] == 7 and events["balanced"]
    assert events["reasons"] == {"missing_required": 1, "malformed_row": 1}
    notes = " | ".join(out["notes"])
    assert "UTF-16" in notes and "day/month/year" in notes and "not read: events_2023.csv" in notes

    catalog = {
        r[0]: r[1:]
        for r in curated_rows(work, "SELECT product_id, title, price, in_stock FROM curated.products")
    }
    assert catalog == {
        "101": ('12" pizza pan', 12.99, True),
        "102": ("Küchenmesser", 1299.0, False),
        "103": ("Tea", None, True),
    }
    got = sorted(
        (str(r[0]), r[1], r[2])
        for r in curated_rows(work, 'SELECT "timestamp", product_id, value FROM curated.events')
    )
    assert got == [
        ("2024-01-25 10:00:00", "101", None),  # 101.0 is product 101; 25/01 is day-first
        ("2024-01-25 10:05:00", "102", 1299.0),
        ("2024-02-03 09:00:00", "101", None),  # so 03/02 is the 3rd of February
        ("2024-02-04 00:00:00", "104", None),  # a compact date
        ("2024-02-04 11:00:00", "103", None),
    ]
    rows = {r["source_line"]: r for r in Quarantine(work).list("events", limit=None)}
    assert rows[5]["reason"] == "missing_required"  # the "nan" user
    assert rows[6]["reason"] == "malformed_row" and "quoted field" in rows[6]["detail"]
    assert rows[6]["raw"]["line"] == EVENTS[5]


def test_a_table_whose_every_row_is_bad_is_published_empty(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title,price\np1,,3\np2,Hat,-4\n")
    (data / "events.csv").write_text("user_id,product_id,event_type,timestamp\n")
    (data / "queries.csv").write_text("query_id,query\nq1,hat\n")
    (data / "judgments.csv").write_text("query_id,product_id,relevance\nq1,p2,N/A\n")  # required: missing
    report = Ingestor(tmp_path / "w").run(data)
    assert report.tables["judgments"].reasons == {"missing_required": 1}
    assert report.tables["products"].rows_curated == 0 and report.tables["products"].balanced
    assert report.tables["products"].reasons == {"missing_required": 1, "out_of_range": 1}
    assert report.tables["events"].rows_in == 0 and report.status == "COMPLETE"


def test_a_stray_carriage_return_costs_no_row(tmp_path):
    """A CR inside a line and outside quotes (junk an export left) failed the whole file with the
    CSV reader's state-machine dump: it is removed and said; a CR inside quotes is the value's."""
    data = tmp_path / "data"
    data.mkdir()
    # (an inch mark is a literal quote, not a quoted field: the CR after it is outside quotes;
    # a CR inside a quoted field that spans lines is the value's)
    (data / "products.csv").write_bytes(
        b'product_id,title,brand\np1,"two\rlines",acme\np2,Hat,acme\np3,12" pan\r,acme\n'
        b'p4,"first line\nsecond\rpart",acme\n'
    )
    (data / "events.csv").write_bytes(
        b"user_id,product_id,event_type,timestamp\r\nu1,p1,view,2024-01-01\r\n"
        b"u2,p2\r,view,2024-01-02\r\nu3,p1,view\r,2024-01-03\r\nu4,p2,view,2024-01-04\r\n"
    )
    report = Ingestor(tmp_path / "w").run(data)
    ev = report.tables["events"]
    assert (ev.rows_in, ev.rows_curated, ev.rows_quarantined) == (4, 4, 0)
    assert any("2 carriage return(s) inside a line" in n for n in report.notes)
    rows = curated_rows(
        tmp_path / "w", "SELECT product_id, event_type FROM curated.events ORDER BY timestamp"
    )
    assert rows == [("p1", "view"), ("p2", "view"), ("p1", "view"), ("p2", "view")]
    # a CR whose removal makes the quote after it open a field (`u1,\r"Lamp`): the record is
    # judged as read without the CR (its quote never closes: that line alone is quarantined),
    # and the good lines after it are kept (they were swallowed into its open quote)
    d2 = tmp_path / "d2"
    d2.mkdir()
    (d2 / "events.csv").write_bytes(
        b'user_id,product_id,event_type,timestamp\nu1,\r"Lamp, 12,view,2024-01-01\n'
        b"u2,p2,view,2024-01-02\nu3,p1,view,2024-01-03\n"
    )
    ev2 = Ingestor(tmp_path / "w2").run(d2).tables["events"]
    assert (ev2.rows_in, ev2.rows_curated, ev2.reasons) == (3, 2, {"malformed_row": 1}), ev2
    titles = curated_rows(tmp_path / "w", "SELECT title FROM curated.products ORDER BY product_id")
    # (a title's line breaks fold to a space; the stray CR after the inch mark is gone)
    assert titles == [("two lines",), ("Hat",), ('12" pan',), ("first line second part",)]
    assert report.tables["products"].rows_curated == 4


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_table_from_a_folder_of_parts(tmp_path, fmt):
    """Spark/Hive-style output: a table's folder of parts is one table; a later part's row is
    the newer version of a key; a quarantined row names its part and its line there."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "data"
    (data / "products").mkdir(parents=True)
    (data / "events").mkdir()
    products = [
        [("p1", "Old title"), ("p2", "Hat")],
        [("p1", "New title"), ("p3", "")],  # p1 again in a later part; p3 without a title
    ]
    for k, rows in enumerate(products):
        path = data / "products" / f"part-{k:05d}.{fmt}"
        if fmt == "csv":
            path.write_text("product_id,title\n" + "".join(f"{p},{t}\n" for p, t in rows))
        else:
            pq.write_table(
                pa.table({"product_id": [r[0] for r in rows], "title": [r[1] for r in rows]}), path
            )
    (data / "products" / "_SUCCESS").write_text("")
    (data / "events" / f"part-00000.{fmt}").write_bytes(b"")
    events = {"user_id": ["u1", "u2"], "product_id": ["p1", "p9"], "event_type": ["view", "view"],
              "timestamp": ["2024-03-01T10:00:00Z", "2024-03-01T10:00:00Z"]}  # fmt: skip
    path = data / "events" / f"part-00001.{fmt}"
    if fmt == "csv":
        path.write_text(
            "user_id,product_id,event_type,timestamp\nu1,p1,view,2024-03-01T10:00:00Z\nu2,p9,view,2024-03-01T10:00:00Z\n"
        )
        (data / "events" / "part-00000.csv").write_text("")
    else:
        pq.write_table(pa.table(events), path)
        (data / "events" / "part-00000.parquet").unlink()
    report = Ingestor(tmp_path / "w").run(data)
    prods = report.tables["products"]
    assert (prods.rows_in, prods.rows_curated, prods.balanced) == (4, 2, True)
    assert [Path(f).name for f in prods.source_files] == [f"part-00000.{fmt}", f"part-00001.{fmt}"]
    titles = dict(curated_rows(tmp_path / "w", "SELECT product_id, title FROM curated.products"))
    assert titles == {"p1": "New title", "p2": "Hat"}
    got = {
        (r["table"], Path(r["source_file"]).name, r["source_line"], r["reason"])
        for r in Quarantine(tmp_path / "w").list(status=None, limit=None)
    }
    first = 2 if fmt == "csv" else 1  # a CSV's line 1 is its header; Parquet rows count from 1
    assert got == {
        ("products", f"part-00000.{fmt}", first, "duplicate_key"),
        ("products", f"part-00001.{fmt}", first + 1, "missing_required"),
        ("events", f"part-00001.{fmt}", first + 1, "unknown_reference"),
    }


def test_files_named_as_other_exports_name_them(tmp_path):
    """A MovieLens download (`ratings.csv`, `movies.csv`) and an orders export read as they
    are: the file name or a rating column implies the event type, which the notes say."""
    data = tmp_path / "ml"
    data.mkdir()
    (data / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,10,4.0,964982703\n1,20,3.5,964982224\n2,10,5.0,1445714835\n"
    )
    (data / "movies.csv").write_text(
        'movieId,title,genres\n10,Toy Story (1995),Adventure|Animation\n20,"Heat (1995)",Action|Crime\n'
    )
    (data / "tags.csv").write_text("userId,movieId,tag,timestamp\n")
    report = Ingestor(tmp_path / "w").run(data)
    assert report.tables["events"].rows_curated == 3 and report.tables["products"].rows_curated == 2
    assert any(
        "ratings.csv: no event_type column: every row is event_type = rating" in n for n in report.notes
    )
    assert any("not read: tags.csv" in n for n in report.notes)
    rows = curated_rows(tmp_path / "w", "SELECT DISTINCT event_type, value FROM curated.events ORDER BY 2")
    assert rows == [("rating", 3.5), ("rating", 4.0), ("rating", 5.0)]
    cats = dict(curated_rows(tmp_path / "w", "SELECT product_id, category FROM curated.products"))
    assert cats == {"10": "Adventure > Animation", "20": "Action > Crime"}

    orders = tmp_path / "orders"
    orders.mkdir()
    (orders / "orders.csv").write_text("customer_id,sku,created_at\nc1,A1,2024-03-01 10:00:00\n")
    report = Ingestor(tmp_path / "w2").run(orders)
    assert report.tables["events"].rows_curated == 1
    assert curated_rows(tmp_path / "w2", "SELECT event_type FROM curated.events") == [("purchase",)]

    (orders / "clicks.csv").write_text("customer_id,sku,created_at\n")
    with pytest.raises(SourceError, match=r"several that could be it \(orders.csv, clicks.csv\)"):
        Ingestor(tmp_path / "w3").run(orders)
    (orders / "clicks.csv").unlink()
    (orders / "orders.csv").rename(orders / "events.csv")
    with pytest.raises(SourceError, match="a rating column"):  # no type, nothing implies one
        Ingestor(tmp_path / "w4").run(orders)


def test_amazon_reviews_as_they_come_keep_their_stars(tmp_path):
    """A raw Amazon reviews file named ratings.jsonl: `overall` (the stars) was ignored, every
    rating curated with no value (all weighed alike), and reviewerID and unixReviewTime needed
    --map flags: they are read by name."""
    data = tmp_path / "data"
    data.mkdir()
    reviews = [
        {"reviewerID": "R1", "asin": "A1", "overall": 5.0, "unixReviewTime": 1500000000},
        {"reviewerID": "R2", "asin": "A1", "overall": 2.0, "unixReviewTime": 1500003600},
    ]
    (data / "ratings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in reviews))
    report = Ingestor(tmp_path / "w").run(data)
    assert report.tables["events"].rows_curated == 2
    got = curated_rows(tmp_path / "w", "SELECT event_type, value FROM curated.events ORDER BY timestamp")
    assert got == [("rating", 5.0), ("rating", 2.0)]


def test_malformed_lines_are_quarantined_in_line_order(tmp_path):
    """The quarantine's ids follow the lines (one set-wise insert numbered them in its join's
    order: `quarantine list` showed line 2 last)."""
    data = tmp_path / "data"
    data.mkdir()
    rows = ["user_id,product_id,event_type,timestamp"]
    rows += [
        f'u{i},"p{i},view,2024-01-01' if i % 7 == 0 else f"u{i},p{i},view,2024-01-01" for i in range(300)
    ]
    (data / "events.csv").write_text("\n".join(rows) + "\n")
    Ingestor(tmp_path / "w").run(data)
    lines = [r["source_line"] for r in Quarantine(tmp_path / "w").list("events", None, "open", limit=None)]
    assert len(lines) > 10 and lines == sorted(lines)


def test_an_events_json_array_on_one_line_loses_no_row(tmp_path):
    """Three events written as a JSON array on one line all started on line 1: the two valid
    ones were quarantined too (three quarantined rows for one bad one, the load unbalanced), and
    with a repeated event id a valid event was lost. Each element is a row of its own."""
    import json

    from shelfwise.governance import Ingestor, Quarantine
    from tests.conftest import curated_rows

    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    d1.mkdir()
    d2.mkdir()
    (d1 / "products.csv").write_text("product_id,title\nP1,Kettle\nP2,Mug\nP3,Cup\n")
    (d1 / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nu1,P1,view,2026-12-01T10:00:00Z\n"
    )
    ev = {"event_type": "view", "timestamp": "2026-12-03T10:00:00Z"}
    rows = [
        {**ev, "event_id": "a", "user_id": "u4", "product_id": "P2"},
        {**ev, "event_id": "n", "user_id": "u5", "product_id": "NOPE"},
        {**ev, "event_id": "b", "user_id": "u6", "product_id": "P3"},
        {**ev, "event_id": "a", "user_id": "u4", "product_id": "P2"},  # sent twice
    ]
    (d2 / "events.json").write_text(json.dumps(rows))  # one line
    work = tmp_path / "w"
    Ingestor(work).run(d1)
    rep = Ingestor(work, mode="append").run(d2).tables["events"]
    assert (rep.rows_in, rep.rows_curated, rep.rows_quarantined) == (4, 2, 2) and rep.balanced
    assert curated_rows(
        work, "SELECT event_id FROM curated.events WHERE event_id IS NOT NULL ORDER BY 1"
    ) == [
        ("a",),
        ("b",),
    ]
    got = sorted(
        (r["source_line"], r["reason"]) for r in Quarantine(work).list("events", status=None, limit=None)
    )
    assert got == [(2, "unknown_reference"), (4, "duplicate_row")], got


def test_a_till_file_without_customers_and_a_stock_feed_before_any_catalog(tmp_path):
    """A till's sales (a receipt id, no customer column) were refused for a missing user_id,
    which the README calls anonymous rows; a stock feed (`product_id,stock`) for a shop whose
    catalog came from events alone said "missing title" without saying why a feed that updates
    products needs one here."""
    import pytest

    from shelfwise.errors import SourceError
    from shelfwise.governance import Ingestor
    from tests.conftest import curated_rows

    d = tmp_path / "till"
    d.mkdir()
    (d / "events.csv").write_text(
        "timestamp,product_id,quantity,session_id,event_type\n"
        "2026-01-02T10:00:00Z,P1,2,R1,purchase\n2026-01-02T10:00:00Z,P2,1,R1,purchase\n"
        "2026-01-02T11:00:00Z,P1,1,R2,purchase\n"
    )
    work = tmp_path / "w"
    rep = Ingestor(work).run(d)
    assert rep.tables["events"].rows_curated == 3 and rep.tables["events"].balanced
    assert any("no user_id column: every row is an anonymous session's" in n for n in rep.notes), rep.notes
    assert curated_rows(work, "SELECT count(DISTINCT user_id) FROM curated.events") == [(2,)]  # R1, R2
    feed = tmp_path / "feed"
    feed.mkdir()
    (feed / "products.csv").write_text("product_id,stock,lead_time_days\nP1,5,3\n")
    with pytest.raises(SourceError, match="there is no curated products table yet"):
        Ingestor(work, mode="append").run(feed)


def test_a_stray_quote_closed_lines_later_quarantines_its_line_alone(tmp_path):
    """A quote opened on one line (`"Office Supplies`) and a quoted value four lines later closed
    it: the lines between became one malformed row, four valid purchases were never curated nor
    counted, and the load still read as balanced. The joined record has more fields than the
    header: the first line is quarantined alone, the others read again; a value that spans lines
    stays one row."""
    data, work = tmp_path / "d", tmp_path / "w"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title\np1,Chair\np2,Desk\n")
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,query\n"
        "u1,p1,purchase,2024-01-01T10:00:00,ok\n"
        'u2,p1,purchase,2024-01-01T10:01:00,"Office Supplies\n'
        "u3,p2,purchase,2024-01-01T10:02:00,fine\n"
        "u4,p1,purchase,2024-01-01T10:03:00,fine\n"
        'u5,p2,purchase,2024-01-01T10:04:00,"Global Leather and Oak Executive Chair, Black"\n'
        'u6,p1,search,2024-01-01T10:05:00,"two\nlines"\n'
        "u7,p2,purchase,2024-01-01T10:06:00,last\n"
    )
    report = Ingestor(work).run(data)
    ev = report.tables["events"]
    assert (ev.rows_in, ev.rows_curated, ev.reasons) == (7, 6, {"malformed_row": 1}), ev
    assert ev.balanced
    got = curated_rows(work, "SELECT count(DISTINCT user_id) FROM curated.events")
    assert got == [(6,)]
    bad = curated_rows(work, "SELECT source_line, detail FROM quarantine.rows")
    assert len(bad) == 1 and bad[0][0] == 3 and "stray quote" in bad[0][1], bad


def test_a_comma_decimal_file_reads_three_decimals_as_decimals(tmp_path):
    """A European export (`;`, `209,3`, `90,93`) read `323,136` as three hundred and twenty-three
    thousand: purchase values and derived prices 1000 times too big, no note. A file whose
    numbers write a comma decimal reads it as one; a file with a point decimal (`1,299.00`)
    keeps the comma a thousands separator; a `;` file that tells neither reads a decimal comma."""

    def load(name: str, sep: str, values: list[str]) -> tuple[list[float], str]:
        d = tmp_path / name
        d.mkdir()
        (d / "products.csv").write_text("product_id,title\np1,Chair\n")
        rows = [
            sep.join(["u1", "p1", "purchase", f"2024-01-0{i + 1}T10:00:00", v]) for i, v in enumerate(values)
        ]
        (d / "events.csv").write_text(
            sep.join(["user_id", "product_id", "event_type", "timestamp", "value"])
            + "\n"
            + "\n".join(rows)
            + "\n"
        )
        report = Ingestor(tmp_path / f"w-{name}").run(d)
        got = curated_rows(tmp_path / f"w-{name}", "SELECT value FROM curated.events ORDER BY timestamp")
        return [r[0] for r in got], " | ".join(report.notes)

    values, notes = load("eu", ";", ["209,3", "323,136", "90,93"])
    assert values == [209.3, 323.136, 90.93]
    assert "323,136 read with a decimal comma (323.136)" in notes
    values, notes = load("us", ",", ['"1,299.00"', '"323,136"', "12.5"])
    assert values == [1299.0, 323136.0, 12.5] and "decimal comma" not in notes
    values, notes = load("semicolon", ";", ["323,136", "1"])
    assert values == [323.136, 1.0] and "fields separated by ';'" in notes
    values, _ = load("plain", ",", ['"323,136"', "7"])
    assert values == [323136.0, 7.0]  # nothing tells: a thousands group, as before


def test_an_order_lines_export_with_a_comma_decimal_derives_prices_as_written(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "orders.csv").write_text(
        "Order ID;Order Date;Customer ID;Product ID;Product Name;Sales;Quantity\n"
        "O1;2024-01-02;C1;P1;Desk;323,136;2\n"
        "O2;2024-01-03;C2;P2;Chair;90,93;1\n"
    )
    Ingestor(tmp_path / "w").run(d)
    got = curated_rows(tmp_path / "w", "SELECT product_id, price FROM curated.products ORDER BY 1")
    assert got == [("P1", 161.57), ("P2", 90.93)]  # (a unit price in cents; it was 161,568.00)


def test_order_lines_that_show_both_decimal_marks_derive_prices_as_the_events_read(tmp_path):
    """The order lines' derived prices and the events load decided the decimal mark each its
    own way: a `;` file showing both marks (`12,99` and `1.5`) read `323,136` as 323.136 in the
    events and as 323136 in the prices (a desk at 161,568.00). One rule decides both."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "orders.csv").write_text(
        "Order ID;Order Date;Customer ID;Product ID;Product Name;Sales;Quantity\n"
        "O1;2024-01-02;C1;P1;Desk;323,136;2\n"
        "O2;2024-01-03;C2;P2;Chair;12,99;1\n"
        "O3;2024-01-04;C3;P3;Lamp;1.5;1\n"
    )
    Ingestor(tmp_path / "w").run(d)
    prices = curated_rows(tmp_path / "w", "SELECT product_id, price FROM curated.products ORDER BY 1")
    values = curated_rows(tmp_path / "w", "SELECT product_id, value FROM curated.events ORDER BY 1")
    assert prices == [("P1", 161.57), ("P2", 12.99), ("P3", 1.5)]
    assert values == [("P1", 323.136), ("P2", 12.99), ("P3", 1.5)]


def test_a_renamed_customer_column_is_refused_not_read_as_anonymous_sessions(tmp_path):
    """A day's export whose `Customer ID` header became `Customer`: every purchase became an
    anonymous session's and the check passed. Appended to events that name customers, a file
    with a customer-like column and no user_id is refused with the mapping to use; a till export
    without any such column still loads as anonymous sessions."""
    day1, day2, till, work = tmp_path / "d1", tmp_path / "d2", tmp_path / "till", tmp_path / "w"
    for d in (day1, day2, till):
        d.mkdir()
        (d / "products.csv").write_text("product_id,title\np1,Chair\n")
    (day1 / "events.csv").write_text(
        "Customer ID,Order ID,product_id,event_type,timestamp\nC1,O1,p1,purchase,2024-01-01T10:00:00\n"
    )
    (day2 / "events.csv").write_text(
        "Customer,Order ID,product_id,event_type,timestamp\nC2,O2,p1,purchase,2024-01-02T10:00:00\n"
    )
    (till / "events.csv").write_text(  # (a store's, a register's, a browser's ids are no customer's: review)
        "Till,store_id,register_id,user_agent,new_customer,Order ID,product_id,event_type,timestamp\n"
        "T1,S1,R1,Mozilla,yes,O3,p1,purchase,2024-01-03T10:00:00\n"
    )
    Ingestor(work).run(day1)
    with pytest.raises(
        SourceError, match=r"missing required column\(s\) 'user_id' \(likely: 'Customer'"
    ) as got:
        Ingestor(work, mode="append").run(day2)
    assert "--map 'events.user_id=Customer'" in str(got.value)
    rep = Ingestor(work, mode="append").run(till)
    assert rep.tables["events"].rows_curated == 1
    assert any("every row is an anonymous session's" in n for n in rep.notes)


def test_the_files_a_load_names_are_named_whole_wherever_it_ran(tmp_path, monkeypatch):
    """`--data data/full` from a shell in /srv: the raw loads and the quarantine named
    `data/full/orders.csv`, a path that means nothing from cron or another directory."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title\np1,Chair\n")
    (d / "events.csv").write_text("user_id,product_id,event_type,timestamp\nu1,p9,view,2024-01-01T10:00:00\n")
    monkeypatch.chdir(tmp_path)
    Ingestor(tmp_path / "w").run("d")
    loads = curated_rows(tmp_path / "w", "SELECT source_file FROM meta.raw_loads ORDER BY 1")
    assert loads == [(str(d / "events.csv"),), (str(d / "products.csv"),)]
    assert curated_rows(tmp_path / "w", "SELECT source_file FROM quarantine.rows") == [
        (str(d / "events.csv"),)
    ]


def test_a_value_over_lines_in_a_malformed_row_stays_one_quarantined_row(tmp_path):
    """A quoted value over lines whose row has one field too many is one malformed row, not a
    stray quote: its inner lines (`u9,p9,fake`) must not be read as rows of their own (the first
    version of the stray-quote check made a purchase of user u9 out of a note's text)."""
    data, work = tmp_path / "d", tmp_path / "w"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title\np1,Chair\np9,Desk\n")
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,query\n"
        'u1,p1,search,2024-01-01T10:00:00,"note:\nu9,p9,purchase,2024-01-01T10:01:00,fake\nend",extra\n'
        "u2,p1,view,2024-01-01T10:02:00,x\n"
    )
    ev = Ingestor(work).run(data).tables["events"]
    assert (ev.rows_in, ev.rows_curated, ev.reasons) == (2, 1, {"malformed_row": 1}), ev
    assert curated_rows(work, "SELECT count(*) FROM curated.events WHERE product_id = 'p9'") == [(0,)]


def test_a_file_that_does_not_tell_its_decimal_mark_reads_as_the_tables_earlier_files(tmp_path):
    """A day's delivery of `323,136` alone (or a row re-processed from the quarantine) told
    nothing and was read as 323136 after the table's first file had shown a decimal comma."""
    d1, d2, work = tmp_path / "d1", tmp_path / "d2", tmp_path / "w"
    for d in (d1, d2):
        d.mkdir()
        (d / "products.csv").write_text("product_id,title\np1,Chair\n")
    (d1 / "events.csv").write_text(
        "user_id;product_id;event_type;timestamp;value\nu1;p1;purchase;2024-01-01T10:00:00;209,3\n"
    )
    (d2 / "events.csv").write_text(
        'user_id,product_id,event_type,timestamp,value\nu2,p1,purchase,2024-01-02T10:00:00,"323,136"\n'
    )
    Ingestor(work).run(d1)
    # served events absorbed between (JSON numbers, `19.99`: typed, no locale's text) do not
    # overwrite what the shop's files told (the review's: the 1000x came back after an absorb)
    served = tmp_path / "served"
    served.mkdir()
    (served / "events.jsonl").write_text(
        '{"user_id": "u3", "product_id": "p1", "event_type": "purchase", "timestamp": "2024-01-01T12:00:00", "value": 19.99}\n'
    )
    Ingestor(work, mode="append").run(served)
    rep = Ingestor(work, mode="append").run(d2)
    assert curated_rows(work, "SELECT value FROM curated.events ORDER BY timestamp") == [
        (209.3,),
        (19.99,),
        (323.136,),
    ]
    assert any("as an earlier file of this table wrote them" in n for n in rep.notes), rep.notes
