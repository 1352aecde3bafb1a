"""Posted events are checked against the curated catalog, as ingestion checks them: a product a
catalog delivery dropped is rejected at once (it was accepted, 202, and quarantined by the next
absorb), and one it added is accepted (it was rejected until the next training)."""

from __future__ import annotations

import csv
import shutil
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from shelfwise import ShelfwiseError, Shop
from shelfwise.governance import Ingestor
from shelfwise.serving import create_app
from tests.serving.conftest import events_in_warehouse, known_users, serve_in_thread


def test_events_are_checked_against_the_catalog_a_delivery_left(trained, tmp_path: Path) -> None:
    data, src = trained
    w = tmp_path / "w"
    shutil.copytree(src, w)
    shop = Shop(w)
    products = shop.table("products")[["product_id", "title"]].to_dict("records")
    # the product recommended most (to 30 shoppers): dropped from the catalog below
    users = known_users(data, w, 30)
    before = shop.recommend(users, 10)
    counts: dict[str, int] = {}
    for line in before:
        for p in line["items"]:
            counts[p] = counts.get(p, 0) + 1
    dropped = max(counts, key=lambda p: (counts[p], p))
    title = next(p["title"] for p in products if p["product_id"] == dropped)
    assert dropped in shop.search(title, 20)
    products = [p for p in products if p["product_id"] == dropped] + [
        p for p in products if p["product_id"] != dropped
    ]
    delivery = tmp_path / "catalog"
    delivery.mkdir()
    with (delivery / "products.csv").open("w", newline="") as fh:
        out = csv.DictWriter(fh, fieldnames=["product_id", "title"])
        out.writeheader()
        out.writerows(products[1:] + [{"product_id": "PNEW-1", "title": "A new kettle"}])
    rep = Ingestor(w).run(delivery)  # a full catalog snapshot: the first product gone, one new
    assert rep.tables["products"].rows_curated == len(products)
    # served lists follow the catalog at once (no training): the dropped product is on none, its
    # similar items are an unknown product's (it was recommended and shown until the next train)
    assert all(dropped not in line["items"] for line in shop.recommend(users, 10))
    assert dropped not in shop.search(title, 20)
    with pytest.raises(ShelfwiseError, match="is no longer in the catalog"):
        shop.similar(dropped, 5)
    user = known_users(data, w, 1)[0]
    now = datetime.now(UTC).isoformat()

    def view(eid: str, product: str) -> dict:
        return {
            "event_id": eid,
            "user_id": user,
            "product_id": product,
            "event_type": "view",
            "timestamp": now,
        }

    got = shop.send_events([view("py-gone", dropped), view("py-new", "PNEW-1")])
    assert [r["status"] for r in got["results"]] == ["rejected", "accepted"], got
    assert got["results"][0]["errors"][0]["detail"] == f"product_id: not in the catalog: {dropped}"
    with serve_in_thread(create_app(w)) as base:  # the route alike
        r = httpx.post(
            f"{base}/v1/events", json=[view("h-gone", dropped), view("h-new", "PNEW-1")], timeout=60
        )
    assert r.status_code == 207 and [x["status"] for x in r.json()["results"]] == ["rejected", "accepted"]
    shop.absorb_events()  # (what the server's stop did not absorb already)
    assert shop.pending_events() == 0
    # both accepted events curated, none quarantined by the absorb; the rejected ones quarantined
    assert len(events_in_warehouse(w, "product_id = 'PNEW-1'")) == 2
    assert len(events_in_warehouse(w, f"product_id = '{dropped}' AND timestamp >= '{now[:19]}'")) == 0
    held = shop.quarantine(table="events", reason="unknown_reference", limit=None)["rows"]
    assert sorted(str(r["raw"].get("event_id")) for r in held if dropped in str(r["raw"])) == [
        "h-gone",
        "py-gone",
    ]
    assert not any("PNEW-1" in str(r["raw"]) for r in held)


def test_a_stock_feed_takes_a_sold_out_product_off_the_lists_at_once(trained, tmp_path: Path) -> None:
    """A stock delivery (`product_id,in_stock`) said the product recommended most is sold out:
    it stayed on every list, in search too, until the next training (the bundle's stock)."""
    data, src = trained
    w = tmp_path / "w"
    shutil.copytree(src, w)
    shop = Shop(w)
    users = known_users(data, w, 30)
    counts: dict[str, int] = {}
    for line in shop.recommend(users, 10):
        for p in line["items"]:
            counts[p] = counts.get(p, 0) + 1
    sold_out = max(counts, key=lambda p: (counts[p], p))
    title = shop.table("products").set_index("product_id").loc[sold_out, "title"]
    assert sold_out in shop.search(title, 20)
    feed = tmp_path / "stock"
    feed.mkdir()
    (feed / "products.csv").write_text(f"product_id,in_stock\n{sold_out},false\n")
    rep = shop.ingest(feed, append=True)
    assert rep.tables["products"].rows_curated == 1
    assert all(sold_out not in line["items"] for line in shop.recommend(users, 10))
    assert sold_out not in shop.search(title, 20)
    (feed / "products.csv").write_text(f"product_id,in_stock\n{sold_out},true\n")
    shop.ingest(feed, append=True)
    assert sold_out in shop.search(title, 20)  # back in stock: back on the lists
