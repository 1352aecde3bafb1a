"""A catalog's stock figure says whether a product is in stock (walk50D finding 6): BigCommerce's
`Current Stock Level` mapped to `stock`, no `in_stock` column, left every sold-out product's
`in_stock` empty: served, and counted `unknown` in the search facet."""

from __future__ import annotations

from pathlib import Path

from shelfwise.governance import Ingestor
from tests.conftest import curated_rows

CATALOG = "Product ID,Product Name,Current Stock Level\nP1,Binder,0\nP2,Stapler,5\nP3,Folder,\nP4,Pen,12\n"
MAP = '[map.products]\nproduct_id = "Product ID"\ntitle = "Product Name"\nstock = "Current Stock Level"\n'


def _shop(tmp_path: Path, name: str, catalog: str, mapping: str = MAP) -> Path:
    d = tmp_path / name
    d.mkdir()
    (d / "products.csv").write_text(catalog, encoding="utf-8")
    (d / "shelfwise.toml").write_text(mapping, encoding="utf-8")
    return d


def test_a_stock_figure_without_in_stock_says_whether_it_is_in_stock(tmp_path: Path) -> None:
    w = tmp_path / "w"
    report = Ingestor(w).run(_shop(tmp_path, "day1", CATALOG))
    got = curated_rows(w, "SELECT product_id, stock, in_stock FROM curated.products ORDER BY 1")
    assert got == [("P1", 0.0, False), ("P2", 5.0, True), ("P3", None, None), ("P4", 12.0, True)]
    said = [n for n in report.notes if "in_stock is derived from 'Current Stock Level'" in n]
    assert len(said) == 1, report.notes
    # a stock feed appended later: a product sold out since is out of stock, one restocked in
    Ingestor(w, mode="append").run(_shop(tmp_path, "day2", "Product ID,Current Stock Level\nP1,3\nP2,0\n"))
    got = curated_rows(w, "SELECT product_id, in_stock, title FROM curated.products ORDER BY 1")
    assert got == [
        ("P1", True, "Binder"),
        ("P2", False, "Stapler"),
        ("P3", None, "Folder"),
        ("P4", True, "Pen"),
    ]


def test_a_given_in_stock_wins_over_the_stock_figure(tmp_path: Path) -> None:
    """A shop selling on backorder says in stock at 0; an empty in_stock reads the figure."""
    w = tmp_path / "w"
    catalog = "Product ID,Product Name,Current Stock Level,in_stock\nP1,Binder,0,true\nP2,Stapler,4,false\nP3,Pen,0,\n"
    report = Ingestor(w).run(_shop(tmp_path, "day1", catalog))
    got = curated_rows(w, "SELECT product_id, in_stock FROM curated.products ORDER BY 1")
    assert got == [("P1", True), ("P2", False), ("P3", False)]
    assert not [n for n in report.notes if "in_stock is derived" in n]
    # a stock feed appended later says nothing of the shop's own word against its figure (P1 on
    # backorder stays in stock at 0: the feed made it out of stock, the review of 5c33115..);
    # where the curated flag agreed with its figure, the flag follows the new figure
    Ingestor(w, mode="append").run(_shop(tmp_path, "day2", "Product ID,Current Stock Level\nP1,0\nP3,6\n"))
    got = curated_rows(w, "SELECT product_id, stock, in_stock FROM curated.products ORDER BY 1")
    assert got == [("P1", 0.0, True), ("P2", 4.0, False), ("P3", 6.0, True)]


def test_a_stock_column_of_0_on_every_row_is_a_shop_not_tracking_stock(tmp_path: Path) -> None:
    """PrestaShop's `quantity` (BigCommerce's `Current Stock Level`) is 0 on every product of a
    shop that does not track stock: the whole catalog was derived out of stock, and nothing was
    ever recommended or found, a note alone saying so. Such a figure is read as none (in_stock
    unknown: served), said in one warning naming the file, the column and how to say otherwise;
    an appended stock feed's 0 still says a product sold out."""
    w = tmp_path / "w"
    catalog = "id,name,price,quantity\nP1,Binder,5,0\nP2,Stapler,9,0\nP3,Folder,3,\n"
    report = Ingestor(w).run(_shop(tmp_path, "day1", catalog, mapping=""))
    got = curated_rows(w, "SELECT product_id, stock, in_stock FROM curated.products ORDER BY 1")
    assert got == [("P1", None, None), ("P2", None, None), ("P3", None, None)]
    [warning] = [m for m in report.warnings if "'quantity'" in m]
    assert warning.startswith("products.csv: the stock column 'quantity' is 0 or empty on every row")
    assert "in_stock column" in warning and "--map products.in_stock" in warning
    assert not [n for n in report.notes if "in_stock is derived" in n]
    # a stock feed appended later: its figures are read, a 0 there is out of stock
    Ingestor(w, mode="append").run(_shop(tmp_path, "day2", "id,quantity\nP1,0\nP2,4\n", mapping=""))
    got = curated_rows(w, "SELECT product_id, stock, in_stock, title FROM curated.products ORDER BY 1")
    assert got == [("P1", 0.0, False, "Binder"), ("P2", 4.0, True, "Stapler"), ("P3", None, None, "Folder")]


def test_an_all_zero_stock_beside_a_given_in_stock_leaves_the_given_flag(tmp_path: Path) -> None:
    """The shop's own in_stock is read; a row without one is unknown, not out of stock."""
    w = tmp_path / "w"
    catalog = "Product ID,Product Name,Current Stock Level,in_stock\nP1,Binder,0,false\nP2,Stapler,0,\n"
    report = Ingestor(w).run(_shop(tmp_path, "day1", catalog))
    got = curated_rows(w, "SELECT product_id, in_stock FROM curated.products ORDER BY 1")
    assert got == [("P1", False), ("P2", None)]
    assert [m for m in report.warnings if "'Current Stock Level' is 0 or empty on every row" in m]


def test_shopifys_inventory_policy_continue_is_in_stock_at_any_figure(tmp_path: Path) -> None:
    """Shopify's `Variant Inventory Policy` was not read: a variant sold on backorder
    (`continue`) at 0 units was out of stock. `continue` is in stock whatever the figure;
    `deny` says nothing of it, the figure decides."""
    w = tmp_path / "w"
    catalog = (
        "Handle,Title,Variant SKU,Variant Price,Variant Inventory Qty,Variant Inventory Policy\n"
        "chair,Steno Chair,CH-BLA,60.74,0,continue\n"
        "lamp,Desk Lamp,LA-1,20,0,deny\n"
        "mug,Mug,MU-1,5,3,deny\n"
        "pen,Pen,PE-1,1,4,Continue\n"
    )
    mapping = '[map.products]\nproduct_id = "Variant SKU"\nstock = "Variant Inventory Qty"\n'
    report = Ingestor(w).run(_shop(tmp_path, "day1", catalog, mapping))
    assert report.tables["products"].column_mapping["Variant Inventory Policy"] == "in_stock"
    assert report.tables["products"].rows_curated == 4
    got = curated_rows(w, "SELECT product_id, stock, in_stock FROM curated.products ORDER BY 1")
    assert got == [("CH-BLA", 0.0, True), ("LA-1", 0.0, False), ("MU-1", 3.0, True), ("PE-1", 4.0, True)]


def test_an_appending_shops_first_delivery_is_its_whole_catalog(tmp_path: Path) -> None:
    """A shop that appends every delivery, the first into an empty workdir: that one is its
    catalog, and a stock of 0 on every row there is no figure either."""
    w = tmp_path / "w"
    catalog = "id,name,price,quantity\nP1,Binder,5,0\nP2,Stapler,9,0\n"
    report = Ingestor(w, mode="append").run(_shop(tmp_path, "day1", catalog, mapping=""))
    got = curated_rows(w, "SELECT product_id, in_stock FROM curated.products ORDER BY 1")
    assert got == [("P1", None), ("P2", None)]
    assert [m for m in report.warnings if "'quantity' is 0 or empty on every row" in m]


def test_shopifys_variant_inventory_qty_is_the_stock_by_name(tmp_path: Path) -> None:
    """Shopify's products export names a variant's units `Variant Inventory Qty`: it is read as
    `stock` without a column map (it was read only when mapped, and ignored otherwise)."""
    w = tmp_path / "w"
    catalog = (
        "Handle,Title,Variant SKU,Variant Price,Variant Inventory Tracker,Variant Inventory Qty,"
        "Variant Inventory Policy\n"
        "chair,Steno Chair,CH-BLA,60.74,shopify,0,deny\n"
        "lamp,Desk Lamp,LA-1,20,shopify,7,deny\n"
        "mug,Mug,MU-1,5,shopify,0,continue\n"
    )
    report = Ingestor(w).run(_shop(tmp_path, "day1", catalog, '[map.products]\nproduct_id = "Variant SKU"\n'))
    pr = report.tables["products"]
    assert pr.column_mapping["Variant Inventory Qty"] == "stock", pr.column_mapping
    assert "Variant Inventory Qty" not in pr.ignored_columns
    got = curated_rows(w, "SELECT product_id, stock, in_stock FROM curated.products ORDER BY 1")
    assert got == [("CH-BLA", 0.0, False), ("LA-1", 7.0, True), ("MU-1", 0.0, True)]
