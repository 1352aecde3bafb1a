"""WooCommerce's `Categories` cell lists a product's categories separated by ", " (`Furniture >
Tables, Sale`; a comma inside a name written `\\,`): the first path is curated and the rows that
gave several are counted in the load's warnings, as for a JSON list of paths (walk49a: every
"X, Sale" was a category series of its own). A plain name with a comma and no `>` is one name."""

from __future__ import annotations

from pathlib import Path

from shelfwise.governance import Ingestor
from tests.conftest import curated_rows

PRODUCTS = (
    "SKU,Name,Categories\n"
    'P1,oak table,"Furniture > Tables, Sale"\n'
    'P2,desk lamp,"Home > Lighting, Sale, Furniture > Lamps"\n'
    'P3,blue mug,"Kitchen > Mugs\\, Cups"\n'
    'P4,tea towel,"Bed, Bath and Kitchen"\n'
    "P5,chair,Furniture > Chairs\n"
)


def test_several_category_paths_in_one_cell_keep_the_first_and_say_so(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "products.csv").write_text(PRODUCTS)
    report = Ingestor(tmp_path / "w").run(data)
    got = dict(curated_rows(tmp_path / "w", "SELECT product_id, category FROM curated.products"))
    assert got == {
        "P1": "Furniture > Tables",
        "P2": "Home > Lighting",
        "P3": "Kitchen > Mugs, Cups",
        "P4": "Bed, Bath and Kitchen",
        "P5": "Furniture > Chairs",
    }
    (said,) = [w for w in report.warnings if "several category paths" in w]
    assert "products.category (the file's 'Categories'): 2 row(s)" in said and "first path" in said, said


def test_a_category_columns_comma_is_part_of_its_name(tmp_path):
    """`Clothing > Shirts, Tops` in a column named `category` is one category: the ", " split of
    several paths is for a plural `Categories` column (a review: names were cut at the comma)."""
    from shelfwise.governance import Ingestor
    from tests.conftest import curated_rows

    d = tmp_path / "d"
    d.mkdir()
    (d / "products.csv").write_text(
        'product_id,title,category\nP1,Tee,"Clothing > Shirts, Tops"\nP2,TV,"Electronics > TV, Audio & Video"\n'
    )
    report = Ingestor(tmp_path / "w").run(d)
    assert curated_rows(tmp_path / "w", "SELECT category FROM curated.products ORDER BY product_id") == [
        ("Clothing > Shirts, Tops",),
        ("Electronics > TV, Audio & Video",),
    ]
    assert not [w for w in report.warnings if "several category paths" in w]
