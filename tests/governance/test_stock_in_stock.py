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
