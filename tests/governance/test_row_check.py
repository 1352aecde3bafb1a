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

PRODUCTS = ["P1", "P2"]
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
]  # fmt: skip


def test_parse_timestamp_formats():
    assert parse_timestamp("2024-03-01T10:00:00Z") == datetime(2024, 3, 1, 10)
    assert parse_timestamp("2024-03-01T12:00:00+02:00") == datetime(2024, 3, 1, 10)
    assert parse_timestamp("1709287200") == datetime(2024, 3, 1, 10)
    assert parse_timestamp("1709287200000") == datetime(2024, 3, 1, 10)
    assert parse_timestamp("not a date") is None


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
    cols = ["user_id", "product_id", "event_type", "timestamp", "query", "value"]
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
