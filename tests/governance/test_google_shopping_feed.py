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
