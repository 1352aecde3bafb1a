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


def test_the_currency_column_is_curated_upper_cased_and_an_unknown_code_quarantined(tmp_path):
    d = _shop(tmp_path / "d", ("eur", "€"))
    with (d / "events.csv").open("a") as fh:
        fh.write("U9,P1,purchase,2024-03-20T10:00:00Z,3,XYZ\n")
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    assert curated_rows(work, "SELECT DISTINCT currency FROM curated.events") == [("EUR",)]
    assert curated_rows(work, "SELECT reason, detail FROM quarantine.rows") == [
        ("invalid_value", "currency: not a known code: XYZ")
    ]
    assert not [w for w in report.warnings if "currencies" in w]


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
