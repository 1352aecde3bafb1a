"""The per-record contract check (HTTP events) agrees with the compiled warehouse checks
(file ingestion): one contract, two executions, the same verdicts and reason codes."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shelfwise.governance import Ingestor, Quarantine, Reason
from shelfwise.governance._contracts import EVENTS
from shelfwise.governance._row_check import check_record, parse_timestamp
from tests.conftest import curated_rows

PRODUCTS = ["P1", "P2", "101"]
# (event, expected primary reason or None)
CASES: list[tuple[dict[str, str], Reason | None]] = [
    ({"user_id": "u1", "product_id": "P1", "event_type": "view", "timestamp": "2024-03-01T10:00:00Z"}, None),
    ({"user_id": "u1", "product_id": "P2", "event_type": "Add To Cart", "timestamp": "1709287200"}, None),
    ({"user_id": "u2", "product_id": "P1", "event_type": "purchase", "timestamp": "1709287200000", "value": "$12.50"}, None),
    ({"user_id": "u2", "product_id": "", "event_type": "search", "timestamp": "2024-03-01 10:00:00", "query": "red kettle"}, None),
    ({"user_id": "u3", "product_id": "P1", "event_type": "rating", "timestamp": "2024-03-01T10:00:00+02:00", "value": "4"}, None),
    ({"user_id": "", "product_id": "P1", "event_type": "view", "timestamp": "2024-03-01T10:00:00Z"}, Reason.MISSING_REQUIRED),
    ({"user_id": "u4", "product_id": "P1", "event_type": "teleport", "timestamp": "2024-03-01T10:00:00Z"}, Reason.INVALID_VALUE),
    ({"user_id": "u4", "product_id": "P1", "event_type": "view", "timestamp": "yesterday"}, Reason.UNPARSEABLE_TIMESTAMP),
    ({"user_id": "u4", "product_id": "P1", "event_type": "view", "timestamp": "1850-01-01T00:00:00Z"}, Reason.OUT_OF_RANGE),
    ({"user_id": "u5", "product_id": "P1", "event_type": "purchase", "timestamp": "2024-03-01T10:00:00Z", "value": "twelve"}, Reason.INVALID_TYPE),
    ({"user_id": "u5", "product_id": "P1", "event_type": "purchase", "timestamp": "2024-03-01T10:00:00Z", "value": "-3"}, Reason.OUT_OF_RANGE),
    ({"user_id": "u5", "product_id": "P1", "event_type": "rating", "timestamp": "2024-03-01T10:00:00Z", "value": "42"}, Reason.OUT_OF_RANGE),
    ({"user_id": "u6", "product_id": "", "event_type": "click", "timestamp": "2024-03-01T10:00:00Z"}, Reason.MISSING_REQUIRED),
    ({"user_id": "u6", "product_id": "", "event_type": "search", "timestamp": "2024-03-01T10:00:00Z"}, Reason.MISSING_REQUIRED),
    ({"user_id": "u7", "product_id": "P404", "event_type": "view", "timestamp": "2024-03-01T10:00:00Z"}, Reason.UNKNOWN_REFERENCE),
    # synonyms are mapped before the cross-column rules: a "review" is a rating, a "query" a search
    ({"user_id": "u8", "product_id": "P1", "event_type": "Review", "timestamp": "2024-03-01T10:00:00Z", "value": "42"}, Reason.OUT_OF_RANGE),
    ({"user_id": "u8", "product_id": "", "event_type": "query", "timestamp": "2024-03-01T10:00:00Z"}, Reason.MISSING_REQUIRED),
    ({"user_id": "u8", "product_id": "", "event_type": "QUERY", "timestamp": "2024-03-01T10:00:00Z", "query": "tea"}, None),
    ({"user_id": "u8", "product_id": "", "event_type": "transaction", "timestamp": "2024-03-01T10:00:00Z"}, Reason.MISSING_REQUIRED),
    ({"user_id": "u8", "product_id": "", "event_type": "Bought", "timestamp": "2024-03-01T10:00:00Z"}, Reason.MISSING_REQUIRED),
    ({"user_id": "u8", "product_id": "", "event_type": "sale", "timestamp": "2024-03-01T10:00:00Z"}, Reason.MISSING_REQUIRED),
    # what exports write: "no value" words, decimal commas, ids written as floats, non-ISO dates
    ({"user_id": "nan", "product_id": "P1", "event_type": "view", "timestamp": "2024-03-01T10:00:00Z"}, Reason.MISSING_REQUIRED),
    ({"user_id": "u9", "product_id": "P1", "event_type": "NULL", "timestamp": "2024-03-01T10:00:00Z"}, Reason.INVALID_VALUE),
    ({"user_id": "u9", "product_id": "n/a", "event_type": "view", "timestamp": "2024-03-01T10:00:00Z"}, Reason.MISSING_REQUIRED),
    ({"user_id": "u9", "product_id": "P2", "event_type": "view", "timestamp": "N/A"}, Reason.UNPARSEABLE_TIMESTAMP),
    ({"user_id": "u9", "product_id": "P1", "event_type": "purchase", "timestamp": "2024-03-01T10:00:00Z", "value": "N/A"}, None),
    ({"user_id": "u10", "product_id": "P1", "event_type": "purchase", "timestamp": "2024-03-01T10:00:00Z", "value": "12,50 EUR"}, None),
    ({"user_id": "u10", "product_id": "P1", "event_type": "purchase", "timestamp": "2024-03-01T10:00:01Z", "value": "1.299,00"}, None),
    ({"user_id": "u10", "product_id": "P1", "event_type": "purchase", "timestamp": "2024-03-01T10:00:02Z", "value": "1,299.00"}, None),
    ({"user_id": "u10", "product_id": "P1", "event_type": "purchase", "timestamp": "2024-03-01T10:00:03Z", "value": "1.299,00 GBP"}, None),
    ({"user_id": "u11", "product_id": "101.0", "event_type": "view", "timestamp": "2024-03-01T10:00:00Z"}, None),
    ({"user_id": "u15", "product_id": "P1", "event_type": "view_item", "timestamp": "2024-03-01T10:00:00Z"}, None),
    ({"user_id": "u15", "product_id": "P1", "event_type": "purchase", "timestamp": "2024-03-01T10:00:00Z", "value": "1 299,00 €"}, None),
    ({"user_id": "u11", "product_id": "102.0", "event_type": "view", "timestamp": "2024-03-01T10:00:00Z"}, Reason.UNKNOWN_REFERENCE),
    ({"user_id": "u12", "product_id": "P1", "event_type": "view", "timestamp": "20240301"}, None),
    ({"user_id": "u12", "product_id": "P1", "event_type": "view", "timestamp": "20240301103000"}, None),
    ({"user_id": "u12", "product_id": "P1", "event_type": "view", "timestamp": "03/01/2024 10:00"}, None),
    ({"user_id": "u12", "product_id": "P1", "event_type": "view", "timestamp": "3/1/24 10:05 AM"}, None),
    ({"user_id": "u12", "product_id": "P1", "event_type": "view", "timestamp": "01.03.2024 11:00"}, None),
    ({"user_id": "u12", "product_id": "P1", "event_type": "view", "timestamp": "Fri, 01 Mar 2024 14:15:00 +0200"}, None),
    ({"user_id": "u12", "product_id": "P1", "event_type": "view", "timestamp": "Mar 2, 2024"}, None),
    ({"user_id": "u12", "product_id": "P1", "event_type": "view", "timestamp": "2024/03/01 10:45"}, None),
    # ISO 8601 to the minute, with an offset (the warehouse's cast needs the seconds)
    ({"user_id": "u16", "product_id": "P1", "event_type": "view", "timestamp": "2024-03-01T10:05Z"}, None),
    ({"user_id": "u16", "product_id": "P1", "event_type": "view", "timestamp": "2024-03-01T10:05+02:00"}, None),
    # a space before the offset (Shopify's exports write `2024-03-05 14:22:31 -0500`)
    ({"user_id": "u17", "product_id": "P1", "event_type": "view", "timestamp": "2024-03-01 10:05:00 -0500"}, None),
    ({"user_id": "u17", "product_id": "P1", "event_type": "view", "timestamp": "2024-03-01 10:05 +02:00"}, None),
    ({"user_id": "u17", "product_id": "P1", "event_type": "view", "timestamp": "2024-03-01 10:05:00.5 -05"}, None),
    ({"user_id": "u17", "product_id": "P1", "event_type": "view", "timestamp": "2024-03-01 -0500"}, Reason.UNPARSEABLE_TIMESTAMP),
    ({"user_id": "u12", "product_id": "P1", "event_type": "view", "timestamp": "13/13/2024"}, Reason.UNPARSEABLE_TIMESTAMP),
    ({"user_id": "u13", "product_id": "P1", "event_type": "view", "timestamp": "1709287200000000"}, None),  # µs
    ({"user_id": "u14", "product_id": "P1", "event_type": "view", "timestamp": "1709287200000000000"}, None),  # ns
    # a US short date: 1 May 2024 (the warehouse's timestamp cast read it as 24 January of the year 5)
    ({"user_id": "u15", "product_id": "P1", "event_type": "view", "timestamp": "05/01/24 10:00"}, None),
    # anonymous browsing: no user, a session (the "no value" words too); neither is still missing
    ({"user_id": "", "session_id": "S1", "product_id": "P1", "event_type": "view", "timestamp": "2024-03-01T10:00:00Z"}, None),
    ({"user_id": "N/A", "session_id": "7.0", "product_id": "P1", "event_type": "view", "timestamp": "2024-03-01T10:00:00Z"}, None),
    ({"user_id": "", "session_id": "null", "product_id": "P1", "event_type": "view", "timestamp": "2024-03-01T10:00:00Z"}, Reason.MISSING_REQUIRED),
    ({"user_id": "~anonymous:S1", "session_id": "S1", "product_id": "P1", "event_type": "view", "timestamp": "2024-03-01T10:00:00Z"}, Reason.INVALID_VALUE),
    # a purchase line's quantity (events 1.4.0): 0 is no sale, fewer a return (its line total
    # may be written below 0); 0 units of anything else is out of range, a no_sale sells nothing
    ({"user_id": "u17", "product_id": "P1", "event_type": "purchase", "timestamp": "2024-03-02", "quantity": "0"}, None),
    ({"user_id": "u17", "product_id": "P1", "event_type": "purchase", "timestamp": "2024-03-03", "quantity": "-2", "value": "-19.90"}, None),
    ({"user_id": "u17", "product_id": "P1", "event_type": "return", "timestamp": "2024-03-04", "quantity": "1"}, None),
    ({"user_id": "u17", "product_id": "P1", "event_type": "view", "timestamp": "2024-03-05", "quantity": "0"}, Reason.OUT_OF_RANGE),
    ({"user_id": "u17", "product_id": "P1", "event_type": "return", "timestamp": "2024-03-06", "quantity": "0"}, Reason.OUT_OF_RANGE),
    ({"user_id": "u17", "product_id": "P1", "event_type": "no_sale", "timestamp": "2024-03-07", "quantity": "3"}, Reason.INVALID_VALUE),
    ({"user_id": "u17", "product_id": "P1", "event_type": "purchase", "timestamp": "2024-03-08", "quantity": "2", "value": "-5"}, Reason.OUT_OF_RANGE),
    # a field's length is bounded (one 900 KB review wedged every absorb, walk48b F0)
    ({"user_id": "u17", "product_id": "P1", "event_type": "rating", "timestamp": "2024-03-01T10:00:00Z", "value": "4", "text": "fine " * 2000}, None),
    ({"user_id": "u17", "product_id": "P1", "event_type": "rating", "timestamp": "2024-03-01T10:00:01Z", "value": "4", "text": "fine " * 2000 + "x"}, Reason.INVALID_VALUE),
    ({"user_id": "u17", "product_id": "", "event_type": "search", "timestamp": "2024-03-01T10:00:00Z", "query": "q" * 1001}, Reason.INVALID_VALUE),
    ({"user_id": "u17", "session_id": "s" * 257, "product_id": "P1", "event_type": "view", "timestamp": "2024-03-01T10:00:00Z"}, Reason.INVALID_VALUE),
]  # fmt: skip


def test_parse_timestamp_formats():
    assert parse_timestamp("2024-03-01T10:00:00Z") == datetime(2024, 3, 1, 10)
    assert parse_timestamp("2024-03-01T12:00:00+02:00") == datetime(2024, 3, 1, 10)
    assert parse_timestamp("1709287200") == datetime(2024, 3, 1, 10)
    assert parse_timestamp("1709287200000") == datetime(2024, 3, 1, 10)
    assert parse_timestamp("not a date") is None
    assert parse_timestamp("20240301") == datetime(2024, 3, 1)
    assert parse_timestamp("03/01/2024 10:00") == datetime(2024, 3, 1, 10)
    assert parse_timestamp("03/01/2024 10:00", day_first=True) == datetime(2024, 1, 3, 10)
    assert parse_timestamp("Fri, 01 Mar 2024 12:00:00 +0200") == datetime(2024, 3, 1, 10)
    assert parse_timestamp("2024-03-01 05:00:00 -0500") == datetime(2024, 3, 1, 10)
    assert parse_timestamp("2024-03-01T11:00 +01:00") == datetime(2024, 3, 1, 10)
    assert parse_timestamp("2024-03-01 05:00:00.250 -0500") == datetime(2024, 3, 1, 10, 0, 0, 250000)


def test_parse_number_forms():
    from shelfwise.governance._row_check import parse_number

    for text, value in [("12.5", 12.5), ("$1,299.00", 1299.0), ("1.299,00", 1299.0), ("12,99", 12.99),
                        ("1,299", 1299.0), ("7.5 EUR", 7.5), ("€ 5,50", 5.5), ("1e3", 1000.0),
                        ("1 299,00", 1299.0), ("1\u00a0299,50 €", 1299.5), ("12 345", 12345.0)]:  # fmt: skip
        assert parse_number(text) == value, text
    for text in ("free", "nan", "inf", "1_000", "12,9,9"):
        assert parse_number(text) is None, text


@pytest.mark.parametrize(("event", "expected"), CASES)
def test_record_check_reason(event, expected):
    res = check_record(EVENTS, event, known={"product_id": set(PRODUCTS)})
    assert res.reason == expected, res.failures


def test_record_check_agrees_with_the_warehouse(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    with open(data / "products.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["product_id", "title"])
        for p in PRODUCTS:
            w.writerow([p, f"product {p}"])
    cols = [
        "user_id",
        "session_id",
        "product_id",
        "event_type",
        "timestamp",
        "query",
        "value",
        "quantity",
        "text",
    ]
    with open(data / "events.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for ev, _ in CASES:
            w.writerow([ev.get(c, "") for c in cols])
    work = tmp_path / "w"
    report = Ingestor(work).run(data)
    assert report.tables["events"].rows_in == len(CASES)
    by_line = {r["source_line"]: r["reason"] for r in Quarantine(work).list("events", limit=None)}
    for line, (ev, _) in enumerate(CASES, start=2):  # line 1 is the header
        py = check_record(
            EVENTS,
            ev,
            known={"product_id": set(PRODUCTS)},
            now=lambda: datetime.now(UTC).replace(tzinfo=None),
        )
        sql = by_line.get(line)
        assert (py.reason.value if py.reason else None) == sql, (line, json.dumps(ev), py.failures, sql)


def test_ids_are_trimmed_alike_by_the_record_check_and_the_warehouse(tmp_path: Path):
    """Both trim the Unicode space separators (no-break, ideographic...) and keep a tab: a
    shopper whose events arrive over HTTP is the user their file rows name, not a twin."""
    from shelfwise.governance import Pseudonymizer, SecretStore
    from shelfwise.storage import read_only

    users = ["u1", " u1\u00a0", "\u3000u1\u2009", "u1\t", "\tu1"]
    data = tmp_path / "data"
    data.mkdir()
    (data / "products.csv").write_text("product_id,title\nP1,kettle\n")
    with open(data / "events.csv", "w", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL)
        w.writerow(["user_id", "product_id", "event_type", "timestamp"])
        for i, u in enumerate(users):  # a minute apart: no row repeats another
            w.writerow([u, "\u00a0P1 ", "view", f"2024-03-01T10:0{i}:00Z"])
    work = tmp_path / "w"
    assert Ingestor(work).run(data).tables["events"].rows_curated == len(users)
    with read_only(work) as (con, _):
        curated = sorted(r[0] for r in con.sql("SELECT user_id FROM curated.events").fetchall())
    pseudo = Pseudonymizer(SecretStore(work).pseudonym_key())
    checked = [
        check_record(
            EVENTS,
            {"user_id": u, "product_id": "\u00a0P1 ", "event_type": "view", "timestamp": "1709287200"},
            known={"product_id": {"P1"}},
        )
        for u in users
    ]
    assert [c.values["user_id"] for c in checked] == ["u1", "u1", "u1", "u1\t", "\tu1"]
    assert {c.values["product_id"] for c in checked} == {"P1"}
    assert curated == sorted(pseudo(c.values["user_id"]) for c in checked)


def test_erasing_a_user_leaves_the_spooled_events_of_another_whose_id_ends_in_a_tab(tmp_path: Path):
    """`u1\\t` is a user of its own (the warehouse keeps the tab): erasing `u1` removes the spooled
    events of `u1` and `\\u00a0u1` (curated as `u1`) and keeps those of `u1\\t`."""
    from shelfwise.governance._erase import _erase_files

    spool = tmp_path / "spool" / "events"
    spool.mkdir(parents=True)
    users = ["u1", "\u00a0u1 ", "u1\t", "u2"]
    lines = [json.dumps({"event": {"user_id": u, "product_id": "P1"}}) + "\n" for u in users]
    (spool / "a.jsonl").write_text("".join(lines))
    out = _erase_files(tmp_path, "u1", [], [])
    assert out["spool/events"] == 2
    left = [json.loads(x)["event"]["user_id"] for x in (spool / "a.jsonl").read_text().splitlines()]
    assert left == ["u1\t", "u2"]


def test_columns_a_file_lacks_are_checked_as_empty_ones(tmp_path: Path):
    """A column the file does not have is read as its constant (the checks fold in the
    warehouse): the same curated rows, in the same order, and the same quarantined lines with
    the same reasons and details as a file that has every column, the missing ones empty."""
    from shelfwise.governance._contracts import CONTRACTS

    all_cols = CONTRACTS["events"].column_names
    some = ["user_id", "session_id", "product_id", "event_type", "timestamp", "query", "value", "quantity"]
    assert set(all_cols) > set(some)
    works = []
    for name, cols in (("some", some), ("all", all_cols)):
        data = tmp_path / f"data-{name}"
        data.mkdir()
        with open(data / "events.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            for ev, _ in CASES:
                if set(ev) <= set(some):  # (the cases of a column `some` lacks: not comparable)
                    w.writerow([ev.get(c, "") for c in cols])
        work = tmp_path / f"w-{name}"
        if works:  # the same pseudonym key: the same curated user ids
            (work / "secrets").mkdir(parents=True)
            key = works[0] / "secrets" / "pseudonym.key"
            (work / "secrets" / "pseudonym.key").write_text(key.read_text())
        Ingestor(work).run(data)
        works.append(work)
    # (a file without a currency column reads each row's currency from its money's own text,
    # `12,50 EUR`; so does an empty cell of a currency column: alike, the currency too)
    curated = [curated_rows(w, "SELECT * FROM curated.events") for w in works]
    assert len(curated[0]) > 5 and curated[0] == curated[1]
    assert curated_rows(works[1], "SELECT count(currency) FROM curated.events")[0][0] > 0
    quarantined = [
        curated_rows(
            w, "SELECT source_line, reason, reasons, detail FROM quarantine.rows ORDER BY source_line"
        )
        for w in works
    ]
    assert len(quarantined[0]) > 5 and quarantined[0] == quarantined[1]


def test_the_warehouse_trims_only_what_trim_would():
    """The compiled checks trim a value only when it could lose something (`trimmed_or_null`):
    the same result as `nullif(trim(v), '')` for every space separator, at either end, inside,
    alone, next to a tab or to non-ASCII text; and an enum value already written as an allowed
    one is read as it is, the others still normalized and mapped."""
    import duckdb

    from shelfwise.governance._compile import DUCKDB, TRIM_SPACES, enum_expr

    values = ["", "a", "a b", "\t", "a\t", "\ta", "日本", " 日本 ", "é", "x\u200b", None]
    for sp in TRIM_SPACES:
        values += [sp, f"{sp}a", f"a{sp}", f"{sp}a{sp}", f"a{sp}b", f"{sp}{sp}", f"\t{sp}"]
    values += [f"{sp}日本" for sp in TRIM_SPACES] + [f"ü{sp}" for sp in TRIM_SPACES]
    values += [f"{sp}x" for sp in TRIM_SPACES] + [f"x{sp}" for sp in TRIM_SPACES]
    con = duckdb.connect()
    con.sql("CREATE TABLE v (s VARCHAR)")
    con.executemany("INSERT INTO v VALUES (?)", [[x] for x in values])
    got = con.sql(f"SELECT s, nullif(trim(s), ''), {DUCKDB.trimmed_or_null('s')} FROM v").fetchall()
    assert all(want == ours for _, want, ours in got), [r for r in got if r[1] != r[2]]
    assert sum(1 for _, want, _ in got if want is None) > 3  # blanks made NULL
    event_type = EVENTS.column("event_type")
    cases = ["view", "Add To Cart", "add-to-cart", "Review", "review", "purchase", "teleport", "PURCHASE"]
    read = [con.execute(f"SELECT {enum_expr(event_type, '$1')}", [c]).fetchone()[0] for c in cases]
    assert read == [
        "view",
        "add_to_cart",
        "add_to_cart",
        "rating",
        "rating",
        "purchase",
        "teleport",
        "purchase",
    ]
