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


def test_the_currency_column_is_curated_upper_cased_and_an_unknown_code_kept_as_unknown(tmp_path):
    d = _shop(tmp_path / "d", ("eur", "€"))
    with (d / "events.csv").open("a") as fh:
        fh.write("U9,P1,purchase,2024-03-20T10:00:00Z,3,XYZ\n")
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    assert curated_rows(work, "SELECT DISTINCT currency FROM curated.events ORDER BY 1") == [
        ("EUR",),
        ("XXX",),
    ]
    assert curated_rows(work, "SELECT reason, detail FROM quarantine.rows") == []
    said = [w for w in report.warnings if "does not know" in w]
    assert said == [
        "events.csv: 1 row(s) with a currency ('Currency') shelfwise does not know ('XYZ' 1 row(s)): "
        "curated as XXX (unknown: the rows are kept, their money never summed with a known currency's; "
        "write the code, e.g. ISO 4217's, to have it read)"
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
        "U7,P1,purchase,2024-01-06T10:00:01Z,5,n/a\n"  # (an export's "no value": none given)
    )
    work = tmp_path / "w"
    report = Ingestor(work, **({"engine": engine(work)} if engine else {})).run(d)
    e = report.tables["events"]
    assert (e.rows_in, e.rows_curated) == (7, 7), e.reasons
    got = curated_rows(work, "SELECT currency, count(*) FROM curated.events GROUP BY 1 ORDER BY 1 NULLS LAST")
    assert got == [("EUR", 2), ("HRK", 1), ("USD", 1), ("XXX", 2), (None, 1)]
    said = [w for w in report.warnings if "does not know" in w]
    assert len(said) == 1 and "events.csv: 2 row(s) with a currency ('currency')" in said[0], report.warnings
    assert "('DOLLARZ' 2 row(s))" in said[0]


def test_a_live_event_with_an_unknown_currency_is_kept_as_unknown():
    from shelfwise.governance._contracts import EVENTS
    from shelfwise.governance._row_check import check_record

    base = {
        "user_id": "U1",
        "product_id": "P1",
        "event_type": "purchase",
        "timestamp": "2024-01-01T10:00:00Z",
    }
    for given, want in (("us$", "USD"), ("hrk", "HRK"), ("eur", "EUR"), ("XYZ", "XXX"), ("n/a", None)):
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


def test_an_unreadable_currency_is_curated_as_unknown_and_never_summed_into_the_known_one(tmp_path):
    """`Kč` on 2 of 8 purchase lines beside `EUR`: curated as XXX (it was empty), said apart at
    ingest, and the customer profiles refuse instead of summing the koruna "in EUR"."""
    d = _shop(tmp_path / "d", ("EUR", "EUR", "EUR", "Kč"))
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    got = curated_rows(work, "SELECT currency, count(*) FROM curated.events GROUP BY 1 ORDER BY 1")
    assert got == [("EUR", 6), ("XXX", 2)]
    assert any(
        "money in 2 currencies: EUR 6 rows, XXX (a code shelfwise cannot read) 2 rows" in w
        for w in report.warnings
    ), report.warnings
    from shelfwise.insights._run import profile_records

    with pytest.raises(
        ShelfwiseError, match="EUR 6 purchase line\\(s\\), and 2 purchase line\\(s\\) of unknown"
    ):
        profile_records(work)


def test_a_line_without_a_currency_beside_lines_with_one_is_in_their_currency_and_said():
    """A line with no currency of its own or its product's beside lines naming EUR was refused
    as unknown: it is in the one currency named, and the figure's source says how many lines
    name none. A code given but unreadable (XXX) beside EUR is still refused, and so are two
    known currencies."""
    import pandas as pd

    from shelfwise.insights._customers import monetary_source, money_currency

    events = pd.DataFrame(
        {
            "user_id": ["U1", "U2", "U3"],
            "product_id": ["P1", "P2", "P3"],
            "event_type": ["purchase"] * 3,
            "value": [10.0, 20.0, 30.0],
            "currency": ["EUR", None, None],
        }
    )
    products = pd.DataFrame(
        {"product_id": ["P1", "P2", "P3"], "price": [1.0, 2.0, 3.0], "currency": ["EUR", "EUR", None]}
    )
    assert money_currency(events, products) == "EUR"
    assert monetary_source(events, products).endswith(", in EUR (1 line names none)")
    products.loc[2, "currency"] = "EUR"  # (the product's currency fills the line's)
    assert money_currency(events, products) == "EUR"
    assert monetary_source(events, products).endswith(", in EUR")
    # a shop whose files name no currency at all: as before
    assert money_currency(events.assign(currency=None), products.assign(currency=None)) is None
    # a code given but unreadable beside a known one, and two known ones: refused
    with pytest.raises(
        ShelfwiseError, match="EUR 2 purchase line\\(s\\), and 1 purchase line\\(s\\) of unknown"
    ):
        money_currency(events.assign(currency=["EUR", None, "XXX"]), products)
    with pytest.raises(ShelfwiseError, match="money in 2 currencies: EUR 2 purchase line"):
        monetary_source(events.assign(currency=["EUR", None, "GBP"]), products)


def test_live_purchases_without_a_currency_beside_an_eur_orders_file_keep_the_profiles(tmp_path):
    """A one-currency shop: orders.csv names EUR, its products none, and purchases posted live to
    /v1/events carry none (a numeric value names no currency). `insights customers` refused
    the shop as "money of more than one currency"; the money is in EUR, 2 lines naming none."""
    import pandas as pd

    from shelfwise.governance._contracts import EVENTS
    from shelfwise.governance._row_check import check_record
    from shelfwise.insights._customers import monetary_source, money_currency

    d = _shop(tmp_path / "d", ("EUR",))
    work = tmp_path / "w"
    Ingestor(work).run(d)
    batch = pd.DataFrame(
        curated_rows(work, "SELECT user_id, product_id, event_type, value, currency FROM curated.events"),
        columns=["user_id", "product_id", "event_type", "value", "currency"],
    )
    live = []
    for user in ("U1", "U2"):
        out = check_record(
            EVENTS,
            {"user_id": user, "product_id": "P1", "event_type": "purchase", "timestamp": "2024-04-01T10:00:00Z",
             "value": "12.5"},
        )  # fmt: skip
        assert not out.failures and out.values.get("currency") is None
        live.append(
            {k: out.values.get(k) for k in ("user_id", "product_id", "event_type", "value", "currency")}
        )
    events = pd.concat([batch, pd.DataFrame(live)], ignore_index=True)
    products = pd.DataFrame(curated_rows(work, "SELECT product_id, price FROM curated.products"))
    products.columns = ["product_id", "price"]
    assert money_currency(events, products) == "EUR"
    assert (
        monetary_source(events, products)
        == "the purchase lines' value (events.value), in EUR (2 lines name none)"
    )


def test_a_feeds_price_with_its_iso_code_fills_the_products_currency(tmp_path):
    """Google Shopping's `price` is `49.99 EUR` (no currency column): the code names the row's
    currency (a sign that names one too, `€12`); a figure without one takes the file's one
    currency; where the rows name two, each keeps its own and a bare figure none."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text(
        'id,title,price\nP1,Mug,49.99 EUR\nP2,Pot,"1.234,56 EUR"\nP3,Cup,€12\nP4,Jug,"49,99 €"\nP5,Bowl,5\n'
    )
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    assert curated_rows(work, "SELECT product_id, price, currency FROM curated.products ORDER BY 1") == [
        ("P1", 49.99, "EUR"),
        ("P2", 1234.56, "EUR"),
        ("P3", 12.0, "EUR"),
        ("P4", 49.99, "EUR"),
        ("P5", 5.0, "EUR"),
    ]
    assert any("no currency column: each row's currency read from its money" in n for n in report.notes)
    (d / "products.csv").write_text("id,title,price\nP1,Mug,49.99 EUR\nP2,Pot,£3.00\nP3,Cup,5.00\n")
    work2 = tmp_path / "w2"
    Ingestor(work2).run(d)
    assert curated_rows(work2, "SELECT product_id, currency FROM curated.products ORDER BY 1") == [
        ("P1", "EUR"),
        ("P2", "GBP"),
        ("P3", None),
    ]


def test_an_empty_currency_cell_is_read_from_its_rows_own_money(tmp_path, engine=None):
    """A currency column with a row's cell empty and its price `12,50 EUR` curated that row with
    no currency, though without the column the price's own text names it: an empty cell (or an
    export's `n/a`) takes its row's money's sign or code, in products and events alike, batch
    and live; a filled cell is never overridden (a sign that disagrees: the cell wins, warned
    with a count and an example line); a plain figure beside an empty cell names none."""
    from shelfwise.governance._contracts import EVENTS
    from shelfwise.governance._row_check import check_record

    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text(
        "product_id,title,price,currency\n"
        'P1,Mug,"12,50 EUR",\n'
        "P2,Pot,€12.50,n/a\n"
        "P3,Cup,49.99 USD, \n"
        "P4,Jug,£3.00,EUR\n"  # (the cell wins)
        "P5,Bowl,5.00,\n"
        "P6,Vase,7.00,GBP\n"
    )
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,value,unit_price,currency\n"
        'U1,P1,purchase,2024-01-01T10:00:00Z,"12,50 EUR",,\n'
        "U2,P1,purchase,2024-01-02T10:00:00Z,,€6.25,\n"
        "U3,P1,purchase,2024-01-03T10:00:00Z,49.99 USD,£3,\n"  # (two currencies: unknown)
        "U4,P1,purchase,2024-01-04T10:00:00Z,£3,,EUR\n"
        "U5,P1,purchase,2024-01-05T10:00:00Z,5,,\n"
    )
    work = tmp_path / "w"
    report = Ingestor(work, **({"engine": engine(work)} if engine else {})).run(d)
    assert curated_rows(work, "SELECT product_id, price, currency FROM curated.products ORDER BY 1") == [
        ("P1", 12.5, "EUR"),
        ("P2", 12.5, "EUR"),
        ("P3", 49.99, "USD"),
        ("P4", 3.0, "EUR"),
        ("P5", 5.0, None),
        ("P6", 7.0, "GBP"),
    ]
    assert curated_rows(work, "SELECT value, currency FROM curated.events ORDER BY timestamp") == [
        (12.5, "EUR"),  # U1
        (6.25, "EUR"),  # U2: its unit price's
        (49.99, "XXX"),  # U3
        (3.0, "EUR"),  # U4: the cell's
        (5.0, None),  # U5
    ]
    assert report.tables["events"].rows_curated == 5, report.tables["events"].reasons
    disagree = [w for w in report.warnings if "not their currency column's" in w]
    assert disagree == [
        "products.csv: price: 1 row(s) carry a currency sign or code that is not their currency column's (e.g. line 5): "
        "check which currency the money is in",
        "events.csv: value: 1 row(s) carry a currency sign or code that is not their currency column's (e.g. line 5): "
        "check which currency the money is in",
    ], report.warnings
    said = [n for n in report.notes if "empty currency cell" in n]
    assert said == [
        "products.csv: 3 row(s) with an empty currency cell ('currency'): their currency read from their "
        "money's own sign or code (EUR 2 row(s), USD 1 row(s))",
        "events.csv: 3 row(s) with an empty currency cell ('currency'): their currency read from their "
        "money's own sign or code (EUR 2 row(s), XXX 1 row(s))",
    ], report.notes
    # a live event reads its empty currency alike
    base = {
        "user_id": "U1",
        "product_id": "P1",
        "event_type": "purchase",
        "timestamp": "2024-01-01T10:00:00Z",
    }
    for value, currency, want in (
        ("12,50 EUR", "", "EUR"), ("€12.50", "n/a", "EUR"), ("£3", "EUR", "EUR"), ("5", "", None),
        ("£3", "XYZ", "XXX"),
    ):  # fmt: skip
        out = check_record(EVENTS, {**base, "value": value, "currency": currency})
        assert not out.failures and out.values["currency"] == want, (value, currency, out.failures)


def test_a_plain_figure_beside_an_empty_currency_cell_takes_the_files_one_currency(tmp_path):
    """A currency column present but empty in every row (as some exports write it) curated the
    plain figures with no currency, while the same file without the column reads them as the one
    currency its other rows name: an empty cell beside a plain figure takes the one currency the
    file names (its filled cells and its money texts), never where it names several; a row
    without any figure is given none, nor an events line (it is in its product's currency, read
    where the money is summed)."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text(
        'product_id,title,price,currency\nP1,Mug,"€12,50",\nP2,Pot,"7,00",\nP3,Cup,"EUR 3,10",\nP4,Jar,n/a,\n'
    )
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp,value,currency\n"
        "U1,P1,purchase,2024-01-01T10:00:00Z,12.50,EUR\n"
        "U2,P1,purchase,2024-01-02T10:00:00Z,6.25,\n"
        "U3,P1,view,2024-01-03T10:00:00Z,,\n"
        "U4,P2,purchase,2024-01-04T10:00:00Z,€7,\n"
    )
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    assert curated_rows(work, "SELECT product_id, price, currency FROM curated.products ORDER BY 1") == [
        ("P1", 12.5, "EUR"),
        ("P2", 7.0, "EUR"),  # (a decimal comma's plain figure, too)
        ("P3", 3.1, "EUR"),
        ("P4", None, None),  # (no figure: no currency)
    ]
    assert curated_rows(
        work, "SELECT event_type, value, currency FROM curated.events ORDER BY timestamp"
    ) == [
        ("purchase", 12.5, "EUR"),
        ("purchase", 6.25, None),  # an events line: its product's currency, read where summed
        ("view", None, None),  # no money, no currency
        ("purchase", 7.0, "EUR"),
    ]
    said = [n for n in report.notes if "the one currency the file names" in n]
    assert said == [
        "products.csv: 1 row(s) with a plain figure and an empty currency cell ('currency') read as EUR, "
        "the one currency the file names",
    ], report.notes
    # a file naming two currencies gives its plain figures none
    (d / "products.csv").write_text(
        "product_id,title,price,currency\nP1,Mug,€12.50,\nP2,Pot,7.00,\nP3,Cup,3,USD\n"
    )
    work2 = tmp_path / "w2"
    Ingestor(work2).run(d)
    assert curated_rows(work2, "SELECT product_id, currency FROM curated.products ORDER BY 1") == [
        ("P1", "EUR"),
        ("P2", None),
        ("P3", "USD"),
    ]


def test_a_word_before_a_price_is_no_currency_code(tmp_path):
    """`von 12` ("from 12") was read as a currency code VON: two codes warned of, and one said to
    disagree with the row's currency column. Only real codes and signs count."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text(
        "product_id,title,price,currency\nP1,Mug,von 12,EUR\nP2,Pot,EUR 5,EUR\nP3,Cup,7,EUR\n"
    )
    (d / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\nU1,P1,view,2024-01-01T10:00:00Z\n"
    )
    report = Ingestor(tmp_path / "w").run(d)
    assert not [w for w in report.warnings if "currency" in w], report.warnings
    assert [n for n in report.notes if "currency sign" in n] == [
        "products.csv: price: the currency sign or code EUR was stripped from 1 value(s)"
    ]
    from shelfwise.governance._compile import money_currency

    for text, want in (
        ("von 12", None), ("ab 12", None), ("dès 12", None), ("12 kg", None), ("$12", None),
        ("eur 12", None), ("EUR 12", "EUR"), ("49.99 EUR", "EUR"), ("€12", "EUR"), ("12 Euro", "EUR"),
        ("US$12", "USD"), ("HRK 5", "HRK"), ("12 zł", "PLN"),
    ):  # fmt: skip
        assert money_currency(text) == want, text


def test_a_no_break_space_around_the_currency_reads_alike_in_a_batch_load_and_a_live_event(tmp_path):
    """`49,99\u00a0€` and `EUR\u00a012` (and a thin space): the batch load and `POST /events`
    (`check_record`) read the same value and currency (the events file has no currency column)."""
    from shelfwise.governance._contracts import EVENTS
    from shelfwise.governance._row_check import check_record

    values = ["49,99\u00a0€", "EUR\u00a012", "€\u00a07,50", "3,25\u2009€"]
    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text("product_id,title,price\nP1,Mug,5\n")
    lines = ["user_id,product_id,event_type,timestamp,value"] + [
        f'U{i},P1,purchase,2024-01-0{i + 1}T10:00:00Z,"{v}"' for i, v in enumerate(values)
    ]
    (d / "events.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    assert report.tables["events"].rows_curated == 4, report.tables["events"].reasons
    batch = curated_rows(work, "SELECT value, currency FROM curated.events ORDER BY timestamp")
    live = []
    for i, v in enumerate(values):
        out = check_record(
            EVENTS,
            {"user_id": f"U{i}", "product_id": "P1", "event_type": "purchase",
             "timestamp": f"2024-01-0{i + 1}T10:00:00Z", "value": v},
        )  # fmt: skip
        assert out.ok, out.failures
        live.append((out.values["value"], out.values["currency"]))
    assert batch == live == [(49.99, "EUR"), (12.0, "EUR"), (7.5, "EUR"), (3.25, "EUR")]
