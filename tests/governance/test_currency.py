"""Money in several currencies (a combined delivery of a shop's DE and UK stores): the `currency`
column is curated (ISO 4217, upper-cased; an unknown code is quarantined), a load holding more
than one currency says so in one line, and a customer's monetary value is never a sum of euros
and pounds: refused, naming the currencies; one currency is stated beside the figure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shelfwise.errors import ShelfwiseError
from shelfwise.governance import Ingestor
from tests.cli.test_cli import sw
from tests.conftest import curated_rows


def _shop(d: Path, currencies: tuple[str, ...] | None) -> Path:
    """3 products; 4 customers buying 2 lines each, line i paying 10 + i; the line's currency
    cycles through `currencies` (None: no currency column at all)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "products.csv").write_text("product_id,title,price\nP1,Mug,5\nP2,Pot,7\nP3,Cup,3\n")
    head = "user_id,product_id,event_type,timestamp,value" + (",Currency" if currencies else "")
    rows = [head]
    for i in range(8):
        row = f"U{i % 4},P{i % 3 + 1},purchase,2024-03-{i + 1:02d}T10:00:00Z,{10 + i}"
        rows.append(row + (f",{currencies[i % len(currencies)]}" if currencies else ""))
    (d / "events.csv").write_text("\n".join(rows) + "\n")
    return d


def test_the_currency_column_is_curated_upper_cased_and_an_unknown_code_kept_empty(tmp_path):
    d = _shop(tmp_path / "d", ("eur", "€"))
    with (d / "events.csv").open("a") as fh:
        fh.write("U9,P1,purchase,2024-03-20T10:00:00Z,3,XYZ\n")
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    assert curated_rows(work, "SELECT DISTINCT currency FROM curated.events ORDER BY 1") == [
        ("EUR",),
        (None,),
    ]
    assert curated_rows(work, "SELECT reason, detail FROM quarantine.rows") == []
    assert not [w for w in report.warnings if "currencies" in w]
    said = [w for w in report.warnings if "does not know" in w]
    assert said == [
        "events.csv: 1 row(s) with a currency ('Currency') shelfwise does not know ('XYZ' 1 row(s)): "
        "curated with no currency (the rows are kept; write the code, e.g. ISO 4217's, to have it read)"
    ], report.warnings


def test_a_withdrawn_code_and_a_common_spelling_are_read_and_an_unknown_one_loses_no_sale(
    tmp_path, engine=None
):
    """A 2022 purchase in kuna (`HRK`, Croatia's until 2023) and one written `US$` were
    quarantined whole, optional currency and all: read now, and a code nobody knows leaves the
    sale curated with no currency, warned of with its count."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title,price\nP1,Mug,5\n")
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,value,currency\n"
        "U1,P1,purchase,2022-06-01T10:00:01Z,37.5,HRK\n"
        "U2,P1,purchase,2024-01-01T10:00:01Z,5,EUR\n"
        "U3,P1,purchase,2024-01-02T10:00:01Z,5,US$\n"
        "U4,P1,purchase,2024-01-03T10:00:01Z,5,Euro\n"
        "U5,P1,purchase,2024-01-04T10:00:01Z,5,DOLLARZ\n"
        "U6,P1,purchase,2024-01-05T10:00:01Z,5,DOLLARZ\n"
    )
    work = tmp_path / "w"
    report = Ingestor(work, **({"engine": engine(work)} if engine else {})).run(d)
    e = report.tables["events"]
    assert (e.rows_in, e.rows_curated) == (6, 6), e.reasons
    got = curated_rows(work, "SELECT currency, count(*) FROM curated.events GROUP BY 1 ORDER BY 1")
    assert got == [("EUR", 2), ("HRK", 1), ("USD", 1), (None, 2)]
    said = [w for w in report.warnings if "does not know" in w]
    assert len(said) == 1 and "events.csv: 2 row(s) with a currency ('currency')" in said[0], report.warnings
    assert "('DOLLARZ' 2 row(s))" in said[0]


def test_a_live_event_with_an_unknown_currency_is_kept_with_none():
    from shelfwise.governance._contracts import EVENTS
    from shelfwise.governance._row_check import check_record

    base = {
        "user_id": "U1",
        "product_id": "P1",
        "event_type": "purchase",
        "timestamp": "2024-01-01T10:00:00Z",
    }
    for given, want in (("us$", "USD"), ("hrk", "HRK"), ("eur", "EUR"), ("XYZ", None)):
        out = check_record(EVENTS, {**base, "currency": given})
        assert not out.failures and out.values["currency"] == want, (given, out.failures)


def test_money_in_two_currencies_is_warned_of_and_never_summed(tmp_path):
    d = _shop(tmp_path / "d", ("EUR", "EUR", "GBP", "EUR"))
    work = tmp_path / "w"
    out = sw("ingest", "--data", str(d), "--workdir", str(work))
    said = [line for line in (out.stdout + out.stderr).splitlines() if "money in" in line]
    assert len(said) == 1 and "money in 2 currencies: EUR 6 rows, GBP 2 rows" in said[0]
    assert "does not convert" in said[0]
    bad = sw("insights", "customers", "--workdir", str(work), "--out", str(tmp_path / "c.jsonl"), check=False)
    assert bad.returncode != 0
    assert "money in 2 currencies: EUR 6 purchase line(s), GBP 2 purchase line(s)" in bad.stderr
    from shelfwise.insights._run import profile_records

    with pytest.raises(ShelfwiseError, match="does not convert"):
        profile_records(work)


@pytest.mark.parametrize("currencies", [("GBP",), None])
def test_one_currency_is_stated_and_a_shop_without_one_is_as_before(tmp_path, currencies):
    work = tmp_path / "w"
    sw("ingest", "--data", str(_shop(tmp_path / "d", currencies)), "--workdir", str(work))
    out = sw("insights", "customers", "--workdir", str(work), "--out", str(tmp_path / "c.jsonl"))
    line = next(x for x in out.stdout.splitlines() if "monetary (total paid) from" in x)
    assert line.endswith("(events.value), in GBP" if currencies else "(events.value)")
    got = {json.loads(x)["user_id"]: json.loads(x)["monetary"] for x in (tmp_path / "c.jsonl").open()}
    assert got == {"U0": 24.0, "U1": 26.0, "U2": 28.0, "U3": 30.0}


def test_a_price_column_with_two_currency_signs_is_warned_of_with_counts(tmp_path):
    """`21,82 €` beside `£13.39` in one price column: both read as plain numbers, and said (one
    sign alone is a note: what was stripped)."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text(
        'product_id,title,price\nP1,Mug,"21,82 €"\nP2,Pot,£13.39\nP3,Cup,"5,00 €"\nP4,Jug,EUR 4.50\n'
    )
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    assert curated_rows(work, "SELECT product_id, price FROM curated.products ORDER BY 1") == [
        ("P1", 21.82),
        ("P2", 13.39),
        ("P3", 5.0),
        ("P4", 4.5),
    ]
    said = [w for w in report.warnings if "currency signs" in w]
    assert len(said) == 1, report.warnings
    assert (
        "products.csv: price holds money in 3 currency signs or codes: € 2 value(s), EUR 1 value(s), £ 1 value(s)"
        in said[0]
    )
    # one sign: a note of what was stripped, no warning
    (d / "products.csv").write_text('product_id,title,price\nP1,Mug,"21,82 €"\nP2,Pot,"3,10 €"\n')
    again = Ingestor(tmp_path / "w2").run(d)
    assert not [w for w in again.warnings if "currency" in w]
    assert any(
        "products.csv: price: the currency sign or code € was stripped from 2 value(s)" in n
        for n in again.notes
    )


def test_a_price_sign_that_disagrees_with_the_currency_column_is_warned_of_through_the_cli(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text(
        "product_id,title,price,currency\nP1,Mug,£13.39,GBP\nP2,Pot,£2.00,EUR\nP3,Cup,3.00,EUR\n"
    )
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    out = sw("ingest", "--data", str(d), "--workdir", str(tmp_path / "w"))
    text = out.stdout + out.stderr
    assert (
        "products.csv: price: 1 row(s) carry a currency sign or code that is not their currency column's (e.g. line 3)"
        in text
    )
    assert "money in 2 currencies: EUR 2 rows, GBP 1 rows" in text
