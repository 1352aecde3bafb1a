"""An order-lines export's money column is often a unit price (WooCommerce's `Item Cost`,
`Unit Price`, Shopify's `Lineitem price`): read as events.unit_price, a line without a value is
worth unit price x quantity; one mapped as events.value is warned of; and the customers profiles
say where `monetary` comes from (walk49a: Σ Item Cost was summed as if each were a line's total,
and without a value monetary silently came from the catalog's current price)."""

from __future__ import annotations

from pathlib import Path

from shelfwise.governance import Ingestor
from shelfwise.governance._contracts import EVENTS
from shelfwise.governance._row_check import check_record
from tests.cli.test_cli import sw
from tests.conftest import curated_rows

PRODUCTS = "product_id,title,price\nP1,red kettle,30\nP2,blue mug,8\n"
ORDERS = """Order Number,Order Date,Customer User ID,SKU,Quantity,Item Cost
5000,2024-03-01 10:00:00,433,P1,2,25
5000,2024-03-01 10:00:00,433,P2,3,5
5001,2024-03-09 10:00:00,433,P2,1,6
5002,2024-03-10 10:00:00,434,P1,1,
"""


def _shop(tmp_path: Path, toml: str | None = None) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "products.csv").write_text(PRODUCTS)
    (data / "orders.csv").write_text(ORDERS)
    if toml:
        (data / "shelfwise.toml").write_text(toml)
    return data


def test_a_unit_price_column_makes_a_lines_value_unit_price_times_quantity(tmp_path: Path) -> None:
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path))
    assert report.tables["events"].column_mapping["Item Cost"] == "unit_price"
    got = sorted(
        curated_rows(tmp_path / "w", "SELECT product_id, quantity, unit_price, value FROM curated.events")
    )
    # (the line without a unit price has no value: the catalog's price is the fallback downstream)
    assert got == [
        ("P1", 1.0, None, None),
        ("P1", 2.0, 25.0, 50.0),
        ("P2", 1.0, 6.0, 6.0),
        ("P2", 3.0, 5.0, 15.0),
    ]
    # POST /v1/events reads one alike
    row = check_record(
        EVENTS,
        {"user_id": "u", "product_id": "P1", "event_type": "purchase", "timestamp": "2024-03-01T10:00:00",
         "quantity": "4", "unit_price": "2.5"},
    )  # fmt: skip
    assert row.values["value"] == 10.0, row


def test_a_unit_price_mapped_as_the_value_is_warned_of(tmp_path: Path) -> None:
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, '[map.events]\nvalue = "Item Cost"\n'))
    (said,) = [w for w in report.warnings if "events.value is 'Item Cost'" in w]
    assert "unit price" in said and '--map events.unit_price="Item Cost"' in said, said


def test_the_customers_profiles_say_where_monetary_comes_from(tmp_path: Path) -> None:
    data = _shop(tmp_path)
    work = tmp_path / "w"
    sw("ingest", "--data", str(data), "--workdir", str(work))
    proc = sw("insights", "customers", "--workdir", str(work), "--out", str(tmp_path / "c.csv"))
    assert (
        "monetary (total paid) from: the purchase lines' value for 3 of 4 line(s); the catalog's "
        in proc.stdout
    )
    assert "current price x quantity for 1 line(s) without a value" in proc.stdout, proc.stdout
    from shelfwise.insights._customers_report import customers_summary

    summary = customers_summary(work, audiences=False)
    assert summary["monetary_source"].startswith("the purchase lines' value for 3 of 4 line(s)"), summary
