"""A catalog of size/colour variants, each its own product row under a parent (style) column:
the parent is curated as `products.group_id` (read by name or mapped), not ignored."""

from __future__ import annotations

from pathlib import Path

from shelfwise.governance import Ingestor
from shelfwise.governance._mapping import parse_map_flags
from tests.conftest import curated_rows

# 2 styles x 2 sizes, a variant row leaving title and brand to its parent's first row, and a
# product of no style (its own group)
CATALOG = (
    "product_id,parent_sku,title,brand,price,in_stock\n"
    "A-S,A,Wrap Dress,Mira,50,true\n"
    "A-M,A,,,50,true\n"
    "B-S,B,Oxford Shirt,Linea,40,true\n"
    "B-M,B,Oxford Shirt,Linea,40,false\n"
    "C,,Belt,Oak,20,true\n"
)


def _shop(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    d = tmp_path / name
    d.mkdir()
    for f, text in files.items():
        (d / f).write_text(text, encoding="utf-8")
    return d


def test_a_parent_column_is_curated_as_group_id_and_not_called_ignored(tmp_path: Path) -> None:
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, "shop", {"products.csv": CATALOG}))
    pr = report.tables["products"]
    assert pr.column_mapping.get("parent_sku") == "group_id"
    assert "parent_sku" not in pr.ignored_columns
    got = curated_rows(
        tmp_path / "w", "SELECT product_id, group_id, title, brand FROM curated.products ORDER BY 1"
    )
    assert got == [
        ("A-M", "A", "Wrap Dress", "Mira"),  # its parent's title and brand, filled
        ("A-S", "A", "Wrap Dress", "Mira"),
        ("B-M", "B", "Oxford Shirt", "Linea"),
        ("B-S", "B", "Oxford Shirt", "Linea"),
        ("C", None, "Belt", "Oak"),
    ]
    notes = [n for n in report.notes if "variant row" in n]
    # one variant row had fields filled (A-M: title and brand); B-M filled nothing
    assert len(notes) == 1 and "1 variant row(s)" in notes[0], notes
    assert "title (1)" in notes[0] and "brand (1)" in notes[0] and "ignored" not in notes[0]


def test_group_id_is_mappable_and_kept_on_an_append(tmp_path: Path) -> None:
    catalog = CATALOG.replace("parent_sku", "Style Code")
    flags = parse_map_flags(["products.group_id=Style Code"])
    w = tmp_path / "w"
    report = Ingestor(w, column_map=flags).run(_shop(tmp_path, "shop", {"products.csv": catalog}))
    assert report.tables["products"].column_mapping.get("Style Code") == "group_id"
    more = "product_id,Style Code,title,brand,price,in_stock\nA-L,A,Wrap Dress,Mira,52,true\nC,A,Belt,Oak,20,true\n"
    flags = parse_map_flags(["products.group_id=Style Code"])
    Ingestor(w, mode="append", column_map=flags).run(_shop(tmp_path, "more", {"products.csv": more}))
    got = curated_rows(w, "SELECT product_id, group_id FROM curated.products ORDER BY 1")
    assert got == [("A-L", "A"), ("A-M", "A"), ("A-S", "A"), ("B-M", "B"), ("B-S", "B"), ("C", "A")]
