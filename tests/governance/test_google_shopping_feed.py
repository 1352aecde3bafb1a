"""A Google Shopping (Merchant Center) product feed, read without a column map: `availability`
is the product's stock status, `product_type` its category path (Google's own
`google_product_category` only without one), `item_group_id` its style."""

from __future__ import annotations

import json
from pathlib import Path

from shelfwise.governance import Ingestor
from tests.cli.test_cli import sw
from tests.conftest import curated_rows

HEADER = (
    "id,item_group_id,title,description,link,image_link,availability,price,sale_price,brand,gtin,"
    "condition,google_product_category,product_type,size,color,material,gender\n"
)
FEED = HEADER + (
    "SN-1-40,SN-1,Court Sneaker,Leather sneaker,https://x.test/sn1,https://x.test/sn1.jpg,in_stock,"
    "89.00 EUR,,Oak,4006381333931,new,Apparel & Accessories > Shoes,Women > Shoes > Sneakers,40,White,Leather,female\n"
    "SN-1-41,SN-1,Court Sneaker,Leather sneaker,https://x.test/sn1,https://x.test/sn1.jpg,out_of_stock,"
    "89.00 EUR,,Oak,4006381333932,new,Apparel & Accessories > Shoes,Women > Shoes > Sneakers,41,White,Leather,female\n"
    "DR-2-S,DR-2,Linen Dress,Summer dress,https://x.test/dr2,https://x.test/dr2.jpg,preorder,"
    "120.00 EUR,99.00 EUR,Mira,,new,Apparel & Accessories > Clothing > Dresses,Women > Clothing > Dresses,S,Sand,Linen,female\n"
    "DR-2-M,DR-2,Linen Dress,Summer dress,https://x.test/dr2,https://x.test/dr2.jpg,backorder,"
    "120.00 EUR,,Mira,,new,Apparel & Accessories > Clothing > Dresses,Women > Clothing > Dresses,M,Sand,Linen,female\n"
    "BT-3,,Belt,Plain belt,https://x.test/bt3,https://x.test/bt3.jpg,in stock,"
    "25.00 EUR,,Oak,,new,Apparel & Accessories > Clothing Accessories > Belts,Men > Accessories,,Brown,Leather,male\n"
    "SC-4,,Scarf,Wool scarf,https://x.test/sc4,https://x.test/sc4.jpg,out of stock,"
    "30.00 EUR,,Mira,,new,Apparel & Accessories > Clothing Accessories > Scarves,Women > Accessories,,Grey,Wool,female\n"
)
# what each availability value reads as (preorder and backorder: sold now, delivered later)
IN_STOCK = {
    "SN-1-40": True,  # in_stock
    "SN-1-41": False,  # out_of_stock
    "DR-2-S": True,  # preorder
    "DR-2-M": True,  # backorder
    "BT-3": True,  # in stock
    "SC-4": False,  # out of stock
}
CATEGORY = {
    "SN-1-40": "Women > Shoes > Sneakers",
    "SN-1-41": "Women > Shoes > Sneakers",
    "DR-2-S": "Women > Clothing > Dresses",
    "DR-2-M": "Women > Clothing > Dresses",
    "BT-3": "Men > Accessories",
    "SC-4": "Women > Accessories",
}


def _shop(tmp_path: Path, files: dict[str, str], name: str = "shop") -> Path:
    d = tmp_path / name
    d.mkdir()
    for f, text in files.items():
        (d / f).write_text(text, encoding="utf-8")
    return d


def test_a_feeds_availability_and_product_type_are_its_stock_status_and_category(tmp_path: Path) -> None:
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, {"products.csv": FEED}))
    pr = report.tables["products"]
    assert pr.rows_quarantined == 0, pr.reasons
    assert pr.column_mapping.get("availability") == "in_stock"
    assert pr.column_mapping.get("product_type") == "category"
    assert pr.column_mapping.get("item_group_id") == "group_id"
    assert "availability" not in pr.ignored_columns and "product_type" not in pr.ignored_columns
    # Google's taxonomy is not read beside the shop's own path (said)
    assert "google_product_category" in pr.ignored_columns
    assert any("'google_product_category' (Google's taxonomy) is not read" in n for n in report.notes)
    got = curated_rows(
        tmp_path / "w", "SELECT product_id, in_stock, category, group_id, price FROM curated.products"
    )
    assert {p: s for p, s, _, _, _ in got} == IN_STOCK
    assert {p: c for p, _, c, _, _ in got} == CATEGORY
    assert {p: g for p, _, _, g, _ in got}["DR-2-M"] == "DR-2"
    # the price's trailing currency code is read past: the regular price, not the sale price
    assert {p: v for p, _, _, _, v in got}["DR-2-S"] == 120.0


def test_google_product_category_is_read_only_without_a_product_type(tmp_path: Path) -> None:
    lines = FEED.splitlines()
    keep = [i for i, h in enumerate(lines[0].split(",")) if h != "product_type"]
    feed = "\n".join(",".join(line.split(",")[i] for i in keep) for line in lines) + "\n"
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, {"products.csv": feed}))
    assert report.tables["products"].column_mapping.get("google_product_category") == "category"
    got = dict(curated_rows(tmp_path / "w", "SELECT product_id, category FROM curated.products"))
    assert got["BT-3"] == "Apparel & Accessories > Clothing Accessories > Belts"
    # numeric taxonomy ids are no category path: not read, said
    numeric = feed.replace("Apparel & Accessories > Shoes", "187").replace(
        "Apparel & Accessories > Clothing > Dresses", "2271"
    )
    numeric = numeric.replace("Apparel & Accessories > Clothing Accessories > Belts", "169")
    numeric = numeric.replace("Apparel & Accessories > Clothing Accessories > Scarves", "177")
    report = Ingestor(tmp_path / "w2").run(_shop(tmp_path, {"products.csv": numeric}, "numeric"))
    assert "category" not in report.tables["products"].column_mapping.values()
    assert any("numeric taxonomy ids" in n for n in report.notes), report.notes


def test_a_product_type_of_catalog_entry_kinds_is_no_category(tmp_path: Path) -> None:
    # (Magento's and WooCommerce's `product_type`: simple, configurable, variable)
    catalog = "sku,name,price,product_type\nA,Lamp,10,simple\nB,Chair,20,configurable\nC,Desk,30,simple\n"
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, {"products.csv": catalog}))
    pr = report.tables["products"]
    assert "category" not in pr.column_mapping.values()
    assert "product_type" in pr.ignored_columns
    assert any("kinds of catalog entry" in n for n in report.notes), report.notes


def test_a_tab_separated_feed_txt_is_read_through_the_cli(tmp_path: Path) -> None:
    # (Merchant Center's tab-separated `.txt` feed, named as the products file)
    tsv = FEED.replace(",", "\t")
    data = _shop(tmp_path, {"products.txt": tsv})
    work = tmp_path / "w"
    out = json.loads(sw("ingest", "--data", str(data), "--workdir", str(work), "--json").stdout)
    pr = out["tables"]["products"]
    assert pr["rows_quarantined"] == 0, pr["reasons"]
    assert pr["column_mapping"]["availability"] == "in_stock"
    assert pr["column_mapping"]["product_type"] == "category"
    got = curated_rows(work, "SELECT product_id, in_stock, category FROM curated.products")
    assert {p: s for p, s, _ in got} == IN_STOCK
    assert {p: c for p, _, c in got} == CATEGORY


# -- variant attributes -----------------------------------------------------------------------------
def test_a_feeds_size_color_material_and_gender_are_kept_as_product_attributes(tmp_path: Path) -> None:
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, {"products.csv": FEED}))
    pr = report.tables["products"]
    for h in ("size", "color", "material", "gender"):
        assert pr.column_mapping.get(h) == f"attributes.{h}" and h not in pr.ignored_columns, (
            pr.column_mapping
        )
    got = {
        p: json.loads(a)
        for p, a in curated_rows(tmp_path / "w", "SELECT product_id, attributes FROM curated.products")
    }
    assert got["SN-1-40"] == {"size": "40", "color": "White", "material": "Leather", "gender": "female"}
    # an empty size adds no key
    assert got["BT-3"] == {"color": "Brown", "material": "Leather", "gender": "male"}


def test_attribute_columns_merge_with_an_attributes_column(tmp_path: Path) -> None:
    catalog = (
        "product_id,title,attributes,colour,size\n"
        'A,Shirt,"{""fit"": ""slim"", ""colour"": ""Old""}",Navy,\n'
        "B,Coat,,Camel,L\n"
        'C,Hat,"{""fit"": ""loose""}",,\n'
    )
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, {"products.csv": catalog}))
    assert report.tables["products"].rows_quarantined == 0
    assert any("kept as product attributes beside those of 'attributes'" in n for n in report.notes)
    got = {
        p: json.loads(a)
        for p, a in curated_rows(tmp_path / "w", "SELECT product_id, attributes FROM curated.products")
    }
    # the column's value wins over the object's; the object's other keys stay; `colour` (the
    # header's and the object's key) is the one key `color`
    assert got == {
        "A": {"fit": "slim", "color": "Navy"},
        "B": {"color": "Camel", "size": "L"},
        "C": {"fit": "loose"},
    }


def test_any_header_maps_into_attributes_and_search_finds_it_through_the_cli(tmp_path: Path) -> None:
    from shelfwise.search import LexicalRetriever
    from shelfwise.search._build import load_search_data

    feed = FEED.replace(",gender\n", ",gender,Fit\n", 1)
    lines = feed.splitlines()
    lines[1:] = [line + (",Relaxed" if line.startswith("DR-2") else ",Regular") for line in lines[1:]]
    data = _shop(tmp_path, {"products.csv": "\n".join(lines) + "\n"})
    work = tmp_path / "w"
    out = json.loads(
        sw(
            "ingest",
            "--data",
            str(data),
            "--workdir",
            str(work),
            "--map",
            "products.attributes.fit=Fit",
            "--json",
        ).stdout
    )
    pr = out["tables"]["products"]
    assert pr["column_mapping"]["Fit"] == "attributes.fit" and "Fit" not in pr["ignored_columns"]
    assert out["column_map"]["products"] == {"attributes.fit": "Fit"}
    got = dict(curated_rows(work, "SELECT product_id, attributes->>'fit' FROM curated.products"))
    assert got == {
        "SN-1-40": "Regular",
        "SN-1-41": "Regular",
        "DR-2-S": "Relaxed",
        "DR-2-M": "Relaxed",
        "BT-3": "Regular",
        "SC-4": "Regular",
    }
    # the attributes are search text: "relaxed" (a fit) and "sand" (a colour) find the dresses
    catalog, _, _ = load_search_data(work)
    assert catalog is not None
    bm25 = LexicalRetriever(tmp_path / "ix").index(catalog)
    found = {catalog.product_ids[i] for i in bm25.search("relaxed").ids.ravel() if i >= 0}
    assert found == {"DR-2-S", "DR-2-M"}
    assert {catalog.product_ids[i] for i in bm25.search("sand").ids.ravel() if i >= 0} == {"DR-2-S", "DR-2-M"}


def test_the_map_files_attributes_section_names_attribute_headers(tmp_path: Path) -> None:
    from shelfwise.governance._mapping import load_column_map

    catalog = "product_id,title,Heel Height,Fit\nA,Boot,5 cm,Narrow\n"
    toml = '[map.products.attributes]\nheel_height = "Heel Height"\nfit = "Fit"\n'
    data = _shop(tmp_path, {"products.csv": catalog, "shelfwise.toml": toml})
    report = Ingestor(tmp_path / "w", column_map=load_column_map(data)).run(data)
    assert report.tables["products"].ignored_columns == []
    (attrs,) = curated_rows(tmp_path / "w", "SELECT attributes FROM curated.products")[0]
    assert json.loads(attrs) == {"heel_height": "5 cm", "fit": "Narrow"}


def test_attribute_columns_are_kept_from_json_lines_and_parquet_alike(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {"id": "A", "title": "Shirt", "size": "M", "color": "Navy", "attributes": {"fit": "slim"}},
        {"id": "B", "title": "Coat", "colour": "Camel"},
        {"id": "C", "title": "Hat"},
    ]
    jl = _shop(tmp_path, {"products.jsonl": "\n".join(json.dumps(r) for r in rows) + "\n"}, "jl")
    Ingestor(tmp_path / "wj").run(jl)
    got = {
        p: a and json.loads(a)
        for p, a in curated_rows(tmp_path / "wj", "SELECT product_id, attributes FROM curated.products")
    }
    # (two spellings in one file, `color` and `colour`: one key, neither value lost)
    assert got == {"A": {"fit": "slim", "size": "M", "color": "Navy"}, "B": {"color": "Camel"}, "C": None}
    pqd = tmp_path / "pq"
    pqd.mkdir()
    table = pa.table(
        {"id": ["A", "B"], "title": ["Shirt", "Coat"], "size": ["M", None], "material": ["Linen", "Wool"]}
    )
    pq.write_table(table, pqd / "products.parquet")
    report = Ingestor(tmp_path / "wp").run(pqd)
    assert report.tables["products"].ignored_columns == []
    got = {
        p: json.loads(a)
        for p, a in curated_rows(tmp_path / "wp", "SELECT product_id, attributes FROM curated.products")
    }
    assert got == {"A": {"size": "M", "material": "Linen"}, "B": {"material": "Wool"}}


def test_a_mistyped_attribute_map_says_how_to_write_one() -> None:
    import pytest

    from shelfwise.errors import ShelfwiseError
    from shelfwise.governance._mapping import parse_map_flags

    with pytest.raises(ShelfwiseError, match=r"attributes\.KEY \(a header kept as the attribute KEY\)"):
        parse_map_flags(["products.attribute.fit=Fit"])
    with pytest.raises(ShelfwiseError, match="name the attribute"):
        parse_map_flags(["products.attributes.=Fit"])
    got = parse_map_flags(["products.attributes.fit=Fit", "products.attributes=Attrs"])
    assert got.attributes_for("products") == {"fit": "Fit"} and got.for_table("products") == {
        "attributes": ("Attrs",)
    }


def test_an_appended_feed_with_a_size_column_merges_into_the_curated_attributes(
    tmp_path: Path, engine=None
) -> None:
    """A partial delivery (price and size) is no whole attributes value: its keys are merged into
    a product's curated attributes key by key (the size was dropped, and before that the curated
    attributes were replaced by the size alone); a delivered key wins, the other curated keys
    stay, an empty cell deletes nothing; a new product takes what it gives. (Run on Spark too:
    tests/storage/test_spark_parity.py.)"""
    w = tmp_path / "w"
    make = (lambda: engine(w)) if engine else (lambda: None)
    catalog = 'product_id,title,price,attributes\nA,Shirt,10,"{""fit"": ""slim"", ""color"": ""red""}"\n'
    catalog += 'C,Scarf,7,"{""color"": ""red"", ""material"": ""wool""}"\n'
    Ingestor(w, engine=make()).run(_shop(tmp_path, {"products.csv": catalog}, name="d1"))
    feed = "product_id,title,price,size\nA,Shirt,12,M\nB,Coat,20,L\n"
    report = Ingestor(w, engine=make(), mode="append").run(_shop(tmp_path, {"products.csv": feed}, name="d2"))
    assert report.tables["products"].rows_quarantined == 0
    rows = "SELECT product_id, price, attributes FROM curated.products"

    def got() -> dict[str, tuple[float, dict[str, str] | None]]:
        return {
            p: (price, json.loads(a) if a else None) for p, price, a in curated_rows(tmp_path / "w", rows)
        }

    assert got() == {
        "A": (12.0, {"fit": "slim", "color": "red", "size": "M"}),
        "B": (20.0, {"size": "L"}),
        "C": (7.0, {"color": "red", "material": "wool"}),
    }
    # `product_id,size` alone: C gains its size; A's empty cell keeps M; B re-sent as it is is
    # unchanged (its keys hold the curated values), and a `colour` column sets the color key
    feed = "product_id,size,colour\nA,,navy\nB,L,\nC,S,\n"
    report = Ingestor(w, engine=make(), mode="append").run(_shop(tmp_path, {"products.csv": feed}, name="d3"))
    pr = report.tables["products"]
    assert (pr.rows_updated, pr.rows_unchanged, pr.rows_inserted) == (2, 1, 0)
    assert pr.rows_in == pr.rows_curated + pr.rows_quarantined
    assert got() == {
        "A": (12.0, {"fit": "slim", "color": "navy", "size": "M"}),
        "B": (20.0, {"size": "L"}),
        "C": (7.0, {"color": "red", "material": "wool", "size": "S"}),
    }


# a product's curated attributes of every JSON type; once a merge rewrites the object DuckDB
# writes it compact, `1.50` as `1.5`, the `\u00e9` escape as the character; its null kept
TYPED_ATTRIBUTES = {
    "A": '{"size": 40, "weight": 1.50, "waterproof": true, "dims": {"w": 2, "h": [1, 2.5e-7]}, '
    '"label": "Gr\u00f6\u00dfe \\u00e9", "color": "red", "gift": null}',
    "B": '{"size": "S", "pack": {"of": 2}, "eco": false}',
}
TYPED_MERGED = {
    "A": '{"weight":1.5,"waterproof":true,"dims":{"w":2,"h":[1,2.5e-7]},'
    '"label":"Gr\u00f6\u00dfe \u00e9","color":"red","gift":null,"size":"40"}',
    "B": '{"pack":{"of":2},"eco":false,"size":"M"}',
}


def test_an_appended_attribute_keeps_the_json_types_of_the_curated_ones(tmp_path: Path, engine=None) -> None:
    """A delivered `size` merged into curated attributes that hold a number, a boolean, a
    nested object, a null and an escaped string keeps each other value's type and writes the
    object as DuckDB's `json_merge_patch` writes it, on either engine (on Spark the other values
    came back as JSON text, `"weight":"1.5"`); a size 40 delivered over a curated number 40 is
    a change (the text "40" is no number), and a delivery of the keys' curated text values
    changes nothing (counted unchanged). (Run on Spark too: tests/storage/test_spark_parity.py.)"""
    import csv
    import io

    w = tmp_path / "w"
    make = (lambda: engine(w)) if engine else (lambda: None)
    out = io.StringIO()
    rows = [
        ("product_id", "title", "price", "attributes"),
        *((p, "Item", 10, a) for p, a in TYPED_ATTRIBUTES.items()),
    ]
    csv.writer(out, lineterminator="\n").writerows(rows)
    Ingestor(w, engine=make()).run(_shop(tmp_path, {"products.csv": out.getvalue()}, name="d1"))

    def text() -> dict[str, str]:
        return dict(curated_rows(w, "SELECT product_id, attributes FROM curated.products"))

    assert text() == TYPED_ATTRIBUTES  # (a full load curates the text as it came)
    feed = "product_id,size\nA,40\nB,M\n"
    report = Ingestor(w, engine=make(), mode="append").run(_shop(tmp_path, {"products.csv": feed}, name="d2"))
    pr = report.tables["products"]
    assert (pr.rows_updated, pr.rows_unchanged, pr.rows_quarantined) == (2, 0, 0)
    assert text() == TYPED_MERGED
    assert json.loads(text()["A"])["weight"] == 1.5 and json.loads(text()["B"])["eco"] is False
    feed = "product_id,size,colour\nA,40,red\nB,M,\n"
    report = Ingestor(w, engine=make(), mode="append").run(_shop(tmp_path, {"products.csv": feed}, name="d3"))
    pr = report.tables["products"]
    assert (pr.rows_updated, pr.rows_unchanged, pr.rows_inserted) == (0, 2, 0)
    assert text() == TYPED_MERGED


def test_an_availability_column_of_free_text_is_not_read_as_in_stock(tmp_path: Path) -> None:
    """A shop's own "Availability" text is no stock flag: the rows are curated (they were all
    quarantined), the column is not read, and a note says how to read it anyway."""
    catalog = (
        "product_id,title,price,availability\n"
        "A,Shirt,10,Ships in 2-3 days\n"
        "B,Coat,20,Available from 2026-01-10\n"
        "C,Hat,5,on order\n"
    )
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, {"products.csv": catalog}))
    pr = report.tables["products"]
    assert pr.rows_quarantined == 0 and pr.rows_curated == 3
    assert any("not read as products.in_stock" in n for n in report.notes), report.notes
    assert curated_rows(
        tmp_path / "w", "SELECT count(*) FROM curated.products WHERE in_stock IS NOT NULL"
    ) == [(0,)]


def test_attribute_spellings_are_one_key(tmp_path: Path) -> None:
    """`color` and `colour` (German `Farbe`, French `couleur`; `taille` and `Größe` for size)
    were two attribute keys: facets and similar items saw two. Read from headers (by name or
    mapped) they are the one canonical key; an attributes object's other spelling of a key a
    header gives is folded into it, its value kept where the header's cell is empty."""
    catalog = (
        "product_id,title,Colour,Größe,attributes\n"
        "A,Shirt,Navy,M,\n"
        'B,Coat,,L,"{""colour"": ""Camel"", ""fit"": ""loose""}"\n'
        "C,Hat,,,\n"
    )
    Ingestor(tmp_path / "w").run(_shop(tmp_path, {"products.csv": catalog}, name="a"))
    got = {
        p: a and json.loads(a)
        for p, a in curated_rows(tmp_path / "w", "SELECT product_id, attributes FROM curated.products")
    }
    assert got == {
        "A": {"color": "Navy", "size": "M"},
        "B": {"color": "Camel", "fit": "loose", "size": "L"},
        "C": None,
    }
    rows = [{"id": "D", "title": "Sock", "Farbe": "Rot"}, {"id": "E", "title": "Cap", "Farbe": "Blau"}]
    jl = _shop(tmp_path, {"products.jsonl": "\n".join(json.dumps(r) for r in rows) + "\n"}, "jl")
    Ingestor(tmp_path / "wj").run(jl)
    got = dict(curated_rows(tmp_path / "wj", "SELECT product_id, attributes FROM curated.products"))
    assert {p: json.loads(a) for p, a in got.items()} == {"D": {"color": "Rot"}, "E": {"color": "Blau"}}
    # a mapped key spelled so is the canonical one too
    catalog = "product_id,title,Shade\nF,Scarf,Grey\n"
    data = _shop(
        tmp_path,
        {"products.csv": catalog, "shelfwise.toml": '[map.products.attributes]\ncolour = "Shade"\n'},
        "m",
    )
    from shelfwise.governance._mapping import load_column_map

    Ingestor(tmp_path / "wm", column_map=load_column_map(data)).run(data)
    (attrs,) = curated_rows(tmp_path / "wm", "SELECT attributes FROM curated.products")[0]
    assert json.loads(attrs) == {"color": "Grey"}


def test_an_attributes_objects_own_spellings_are_one_key(tmp_path: Path) -> None:
    """A catalog whose attributes come as objects alone (a JSON lines `attributes` field, an
    attributes column; no attribute header) had `Colour`, `colour` and `color` as separate facet
    keys: each spelling is folded into the canonical key. Where one object holds two, the
    canonical key's value wins (then the first spelling's); other keys and JSON types stay."""
    rows = [
        {"id": "A", "title": "Shirt", "attributes": {"Colour": "Navy", "fit": "slim"}},
        {"id": "B", "title": "Coat", "attributes": {"colour": "Camel", "color": "Brown"}},
        {"id": "C", "title": "Sock", "attributes": {"Farbe": "Rot", "couleur": "Rouge", "Größe": 42}},
        {"id": "D", "title": "Hat", "attributes": {"Age Group": "kids", "size": "S", "pack": [1, 2]}},
        {"id": "E", "title": "Cap"},
    ]
    jl = _shop(tmp_path, {"products.jsonl": "\n".join(json.dumps(r) for r in rows) + "\n"}, "jl")
    report = Ingestor(tmp_path / "wj").run(jl)
    assert report.tables["products"].rows_quarantined == 0
    got = {
        p: a and json.loads(a)
        for p, a in curated_rows(tmp_path / "wj", "SELECT product_id, attributes FROM curated.products")
    }
    assert got == {
        "A": {"color": "Navy", "fit": "slim"},
        "B": {"color": "Brown"},
        "C": {"color": "Rot", "size": 42},
        "D": {"age_group": "kids", "size": "S", "pack": [1, 2]},
        "E": None,
    }
    # an attributes column of a CSV file, without attribute headers: the same
    catalog = (
        'product_id,title,attributes\nF,Scarf,"{""Colour"": ""Grey"", ""taille"": ""L""}"\nG,Belt,not json\n'
    )
    Ingestor(tmp_path / "wc").run(_shop(tmp_path, {"products.csv": catalog}, "csv"))
    (attrs,) = curated_rows(
        tmp_path / "wc", "SELECT attributes FROM curated.products WHERE product_id = 'F'"
    )[0]
    assert json.loads(attrs) == {"color": "Grey", "size": "L"}


def test_two_spellings_of_an_attribute_header_lose_no_column_in_either_order(tmp_path: Path) -> None:
    """`colour,color` read only `colour` (the `color` column was never read): neither column
    is lost in either order; where a row has both, the header spelled as the key wins."""
    rows = {"A": ("Red", "Navy"), "B": ("Camel", ""), "C": ("", "Grey"), "D": ("", "")}
    want = {"A": {"color": "Navy"}, "B": {"color": "Camel"}, "C": {"color": "Grey"}, "D": None}
    for n, (other, canonical) in enumerate((("colour", "color"), ("Farbe", "Color"))):
        for order in (0, 1):
            head = [other, canonical] if order == 0 else [canonical, other]
            catalog = f"product_id,title,{head[0]},{head[1]}\n" + "".join(
                f"{p},T{p},{o},{c}\n" if order == 0 else f"{p},T{p},{c},{o}\n" for p, (o, c) in rows.items()
            )
            w = tmp_path / f"w{n}{order}"
            Ingestor(w).run(_shop(tmp_path, {"products.csv": catalog}, f"s{n}{order}"))
            sql = "SELECT product_id, attributes FROM curated.products"
            got = {p: a and json.loads(a) for p, a in curated_rows(w, sql)}
            assert got == want, head
    # the column map names `Farbe` as the color: a `color` header beside it is read where
    # `Farbe` is empty (before: never read)
    catalog = "product_id,title,Farbe,color\nA,Shirt,Rot,Navy\nB,Coat,,Camel\nC,Hat,,\n"
    data = _shop(
        tmp_path,
        {"products.csv": catalog, "shelfwise.toml": '[map.products.attributes]\ncolor = "Farbe"\n'},
        "m",
    )
    from shelfwise.governance._mapping import load_column_map

    Ingestor(tmp_path / "wm", column_map=load_column_map(data)).run(data)
    sql = "SELECT product_id, attributes FROM curated.products"
    got = {p: a and json.loads(a) for p, a in curated_rows(tmp_path / "wm", sql)}
    assert got == {"A": {"color": "Rot"}, "B": {"color": "Camel"}, "C": None}
