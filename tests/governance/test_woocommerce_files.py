"""WooCommerce's files as downloaded (walk49a): the product export is named after its date
(`wc-product-export-7-12-2026-1796642000000.csv`) and is read as the products table; a file
read as no table is named in a note with the `shelfwise.toml` `[files]` line that would read it;
and the one shelfwise.toml whose `[files]` names the product export serves a day's orders alone
(an append delivery of one table), instead of failing for the missing products file."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfwise.errors import ShelfwiseError
from shelfwise.governance import Ingestor
from tests.conftest import curated_rows

WC_PRODUCTS = (
    "ID,Type,SKU,Name,Published,Regular price\n1000,simple,P1,red kettle,1,20\n1001,simple,P2,blue mug,1,5\n"
)
WC_EXPORT = "wc-product-export-7-12-2026-1796642000000.csv"
ORDERS = "Order Number,Order Date,Order Status,Customer User ID,SKU,Quantity\n5000,2024-03-01 10:00:00,completed,433,P1,1\n"
DAY2 = "Order Number,Order Date,Order Status,Customer User ID,SKU,Quantity\n5001,2024-03-02 10:00:00,completed,434,P2,1\n"


def _folder(path: Path, files: dict[str, str]) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def test_woocommerces_product_export_is_read_as_the_products_table(tmp_path: Path) -> None:
    day1 = _folder(tmp_path / "day1", {WC_EXPORT: WC_PRODUCTS, "orders.csv": ORDERS})
    report = Ingestor(tmp_path / "w").run(day1)
    assert report.tables["products"].source_file.endswith(WC_EXPORT)
    assert not any(n.startswith("not read") for n in report.notes), report.notes
    assert sorted(curated_rows(tmp_path / "w", "SELECT product_id FROM curated.products")) == [
        ("P1",),
        ("P2",),
    ]


def test_an_unread_file_is_named_with_the_files_line_that_reads_it(tmp_path: Path) -> None:
    day1 = _folder(tmp_path / "day1", {"orders.csv": ORDERS, "catalogue 2024-03-01.csv": WC_PRODUCTS})
    report = Ingestor(tmp_path / "w").run(day1)
    (said,) = [n for n in report.notes if n.startswith("not read: catalogue 2024-03-01.csv")]
    assert '[files] products = "catalogue 2024-03-01.csv"' in said, said


@pytest.mark.parametrize("declared", ["wc-product-export-*.csv", WC_EXPORT])
def test_a_days_orders_alone_under_the_shops_files_line_are_appended(tmp_path: Path, declared: str) -> None:
    toml = f'[files]\nproducts = "{declared}"\nevents = "orders.csv"\n'
    day1 = _folder(tmp_path / "day1", {WC_EXPORT: WC_PRODUCTS, "orders.csv": ORDERS, "shelfwise.toml": toml})
    day2 = _folder(tmp_path / "day2", {"orders.csv": DAY2, "shelfwise.toml": toml})
    work = tmp_path / "w"
    Ingestor(work).run(day1)
    report = Ingestor(work, mode="append").run(day2)
    assert "products" not in report.tables and report.tables["events"].rows_curated == 1
    assert any("no products were delivered" in n and declared in n for n in report.notes), report.notes
    assert curated_rows(work, "SELECT count(*) FROM curated.products") == [(2,)]
    assert curated_rows(work, "SELECT count(*) FROM curated.events") == [(2,)]
    # a full load without the declared file is refused, as before (a typo, a folder not the shop's)
    with pytest.raises(ShelfwiseError, match="has no such file"):
        Ingestor(tmp_path / "w2").run(day2)


def test_regular_price_is_the_price_and_a_sale_price_is_said_not_read(tmp_path: Path) -> None:
    """WooCommerce's `Regular price` (Shopify's `Variant Price`) is the price without a map; its
    `Sale price` is not read, and a note says so with the map that would read it (walk49a: every
    price was empty until --map products.price="Regular price")."""
    products = "SKU,Name,Regular price,Sale price\nP1,red kettle,20,15\nP2,blue mug,5,\n"
    day1 = _folder(tmp_path / "day1", {"products.csv": products, "orders.csv": ORDERS})
    report = Ingestor(tmp_path / "w").run(day1)
    assert report.tables["products"].column_mapping["Regular price"] == "price"
    prices = dict(curated_rows(tmp_path / "w", "SELECT product_id, price FROM curated.products"))
    assert prices == {"P1": 20.0, "P2": 5.0}
    (said,) = [n for n in report.notes if "'Sale price' is not read" in n]
    assert "products.price is 'Regular price'" in said and '--map products.price="Sale price"' in said, said
    shopify = "Handle,Title,Variant SKU,Variant Price\nkettle,red kettle,P1,19.5\n"
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "products.csv").write_text(shopify)
    (tmp_path / "s" / "shelfwise.toml").write_text('[map.products]\nproduct_id = "Variant SKU"\n')
    Ingestor(tmp_path / "w2").run(tmp_path / "s")
    assert curated_rows(tmp_path / "w2", "SELECT price FROM curated.products") == [(19.5,)]
