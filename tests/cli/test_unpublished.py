"""A product the shop's catalog says is not published (WooCommerce's `Published` 0 or -1,
Shopify's `Status` draft or archived) is curated, with its events and history, but never
served: not recommended, not on a similar-items list, not found by search, not on the cold-start
list, even when it is the most popular product (walk49a: 158 of 4,342 served slots were
unpublished products)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from shelfwise.serving import Bundle, current_bundle
from tests.cli.test_catalog_rows import COLOURS, FAST, STYLES
from tests.cli.test_cli import sw

DRAFT, PRIVATE = "P900", "P901"  # WooCommerce's -1 (a draft) and 0 (private)


def _shop(data: Path) -> None:
    data.mkdir(parents=True)
    # WooCommerce's export header: `SKU` the id, `Name` the title, `Published` 1 / 0 / -1
    rows = ["SKU,Name,Published,Categories,Regular price"]
    for i in range(30):
        rows.append(f"P{i:03d},{STYLES[i % 5]} - {COLOURS[i % 12]},1,Apparel > Tees,19.99")
    rows.append(f"{DRAFT},Slim Fit Tee - Gold,-1,Apparel > Tees,19.99")
    rows.append(f"{PRIVATE},Organic Hoodie - Gold,0,Apparel > Tees,19.99")
    (data / "products.csv").write_text("\n".join(rows) + "\n")
    ev = ["user_id,product_id,event_type,timestamp"]
    t = 1_767_225_600
    for u in range(40):
        # everyone buys the two unpublished products first: the most popular by far
        seq = [DRAFT, PRIVATE, f"P{u % 30:03d}", f"P{(u * 7 + 3) % 30:03d}", f"P{(u + 1) % 30:03d}"]
        for j, p in enumerate(seq):
            ev.append(f"U{u:03d},{p},view,{t + u * 1000 + j * 10}")
    (data / "events.csv").write_text("\n".join(ev) + "\n")


@pytest.mark.slow
def test_unpublished_products_are_curated_but_never_served(tmp_path):
    _shop(tmp_path / "data")
    work = tmp_path / "w"
    sw("train", "--data", str(tmp_path / "data"), "--workdir", str(work), "--json",
       "--models", "popularity,itemknn,content", *FAST)  # fmt: skip
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    try:
        got = dict(con.sql("SELECT product_id, published FROM curated.products").fetchall())
        n_events = con.sql(
            f"SELECT count(*) FROM curated.events WHERE product_id IN ('{DRAFT}', '{PRIVATE}')"
        )
        assert n_events.fetchone()[0] == 80  # their events (history) are curated
    finally:
        con.close()
    assert got[DRAFT] is False and got[PRIVATE] is False and got["P000"] is True and len(got) == 32
    bundle = Bundle.load(current_bundle(work))
    ids = [str(p) for p in bundle.interactions.item_ids]
    cold = [ids[i] for i in bundle.arrays["cold_start"]]
    assert DRAFT not in cold and PRIVATE not in cold and len(cold) == 30
    log = next((work / "logs").glob("train-*.log")).read_text()
    assert "2 product(s) the catalog says are not published" in log

    hidden = {DRAFT, PRIVATE}
    users = tmp_path / "u.csv"
    users.write_text("user_id\nU001\nU002\nsomebody-new\n")
    for model in ("popularity", "itemknn"):
        sw("recommend", "--workdir", str(work), "--users", str(users), "--k", "10",
           "--model", model, "--out", str(tmp_path / "r.jsonl"))  # fmt: skip
        lists = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
        assert all(len(a["items"]) == 10 for a in lists), lists
        assert not hidden & {p for a in lists for p in a["items"]}, (model, lists)
    (tmp_path / "p.csv").write_text("product_id\nP000\nP001\n")
    sw("similar", "--workdir", str(work), "--products", str(tmp_path / "p.csv"), "--k", "10",
       "--out", str(tmp_path / "s.jsonl"))  # fmt: skip
    lists = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert all(a["items"] for a in lists) and not hidden & {p for a in lists for p in a["items"]}, lists
    (tmp_path / "q.csv").write_text("query_id,query\nq1,slim fit tee gold\nq2,organic hoodie gold\nq3,zzqx\n")
    sw("search", "--workdir", str(work), "--queries", str(tmp_path / "q.csv"), "--k", "10",
       "--out", str(tmp_path / "q.jsonl"))  # fmt: skip
    pages = [json.loads(x) for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert all(p["items"] for p in pages) and not hidden & {p for a in pages for p in a["items"]}, pages
