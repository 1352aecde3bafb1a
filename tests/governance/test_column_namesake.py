"""A header the column map reads as another column is still read as the column of its own name:
a catalog without titles mapped `title` to its `product_id` column and was told `product_id` was
missing while its header listed it. One header then feeds both columns, said in the notes; it is
never read for another column that merely has it as an alias."""

from __future__ import annotations

from pathlib import Path

from shelfwise.governance import CONTRACTS
from shelfwise.governance._load_columns import map_columns
from shelfwise.governance._mapping import ColumnMap


def test_a_mapped_header_still_reads_as_its_namesake_column(tmp_path: Path):
    cmap = ColumnMap()
    cmap.set("products", "title", ["product_id"], "--map")
    cols = map_columns(CONTRACTS["products"], ["product_id", "category"], tmp_path / "products.csv", cmap)
    assert cols.mapping["title"] == "product_id" and cols.mapping["product_id"] == "product_id"
    assert cols.mapping["category"] == "category" and cols.extra == []
    assert any(
        "'product_id' is read as products.product_id and, as the map says, as products.title" in n
        for n in cols.notes
    )


def test_a_header_mapped_elsewhere_is_not_read_by_anothers_alias(tmp_path: Path):
    """`price = "Sale Price"` with a `Price` column: the map's header is the price, and `Price`
    is ignored (the rule the namesake exception keeps)."""
    cmap = ColumnMap()
    cmap.set("products", "price", ["Sale Price"], "--map")
    cols = map_columns(
        CONTRACTS["products"], ["product_id", "title", "Price", "Sale Price"], tmp_path / "p.csv", cmap
    )
    assert cols.mapping["price"] == "Sale Price" and "Price" in cols.extra


def test_an_optional_namesake_is_not_read_from_a_header_the_map_took(tmp_path: Path):
    """`--map events.query=text` reads the searches' words; `text` is not loaded as review text
    too (only a required column, missing otherwise, is read from a header the map took)."""
    cmap = ColumnMap()
    cmap.set("events", "query", ["text"], "--map")
    header = ["user_id", "product_id", "event_type", "timestamp", "text"]
    cols = map_columns(CONTRACTS["events"], header, tmp_path / "events.csv", cmap)
    assert cols.mapping["query"] == "text" and "text" not in cols.mapping
    cmap = ColumnMap()
    cmap.set("products", "category", ["brand"], "--map")
    cols = map_columns(
        CONTRACTS["products"], ["product_id", "title", "brand"], tmp_path / "products.csv", cmap
    )
    assert cols.mapping["category"] == "brand" and "brand" not in cols.mapping
