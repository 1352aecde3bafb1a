"""Rows of a keyed table re-sent out of order: a product (or a customer) whose older version
arrives after a newer one. Their update time (PrestaShop's `date_upd`, WooCommerce's
`date_modified`, Magento's `updated_at`, Shopify's `Updated At`: the contracts' optional
`updated_at`) decides: an appended row older than its key's curated row does not replace it; it
is quarantined as `stale_row` (status superseded, counted in `rows_stale`, not judged). Equal
or missing times: the later delivery wins, as before."""

from __future__ import annotations

from pathlib import Path

from shelfwise.governance import Ingestor
from tests.conftest import curated_rows


def _day(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    d = tmp_path / name
    d.mkdir()
    for f, text in files.items():
        (d / f).write_text(text, encoding="utf-8")
    return d


def test_an_older_product_row_delivered_later_does_not_replace_the_newer(tmp_path: Path, engine=None) -> None:
    """(Run on Spark too: tests/storage/test_spark_parity.py.)"""
    w = tmp_path / "w"
    make = (lambda: engine(w)) if engine else (lambda: None)
    day1 = (
        "id_product,name,price,date_upd\n"
        "P1,Kettle,30,2026-03-05 10:00:00\n"
        "P2,Mug,5,2026-03-05 10:00:00\n"
        "P3,Pot,9,\n"
        "P4,Pan,12,2026-03-05 10:00:00\n"
        "P2,Mug,4,2026-03-02 10:00:00\n"  # (P2's older row listed last: the newer one is kept)
        "P6,Cup,2,2026-03-05 10:00:00\n"
        "P6,Cup,3,\n"  # (a row without a time: the last row wins, as a later delivery would)
        "P7,Jar,4,2026-03-05 10:00:00\n"
        "P7,Jar,5,2026-03-05 10:00:00\n"  # (a tie: the last row)
    )
    first = Ingestor(w, engine=make()).run(_day(tmp_path, "d1", {"products.csv": day1}))
    assert first.tables["products"].column_mapping["date_upd"] == "updated_at"
    assert first.tables["products"].reasons == {"duplicate_key": 3}
    got = dict(curated_rows(w, "SELECT product_id, price FROM curated.products WHERE product_id > 'P1'"))
    assert (got["P2"], got["P6"], got["P7"]) == (5.0, 3.0, 5.0)
    said = " (the row with the latest updated_at wins where each has one, else the last row)"
    assert sorted(curated_rows(w, "SELECT source_line, detail FROM quarantine.rows")) == [
        (6, "conflicting duplicate of key P2" + said),
        (7, "conflicting duplicate of key P6" + said),
        (9, "conflicting duplicate of key P7" + said),
    ]
    # the re-send: P1's older version (an export of the 1st, arriving late), P2's newer one,
    # P3 without a curated time, P4 with none of its own, P5 a new product
    day2 = (
        "id_product,name,price,date_upd\n"
        "P1,Kettle,25,2026-03-01 08:00:00\n"
        "P2,Mug,6,2026-03-06 09:00:00\n"
        "P3,Pot,8,2026-03-01 08:00:00\n"
        "P4,Pan,11,\n"
        "P5,Lid,3,2026-03-01 08:00:00\n"
    )
    report = Ingestor(w, engine=make(), mode="append").run(_day(tmp_path, "d2", {"products.csv": day2}))
    pr = report.tables["products"]
    got = dict(curated_rows(w, "SELECT product_id, price FROM curated.products"))
    assert got == {"P1": 30.0, "P2": 6.0, "P3": 8.0, "P4": 11.0, "P5": 3.0, "P6": 3.0, "P7": 5.0}
    assert pr.rows_stale == 1 and pr.reasons == {"stale_row": 1}
    assert (pr.rows_inserted, pr.rows_updated) == (1, 3)
    assert pr.rows_in == pr.rows_curated + pr.rows_quarantined + pr.rows_withheld and pr.balanced
    assert pr.contract_check == "passed" and pr.check().judged == 4  # (not a fault of the file)
    assert any("1 products row(s) older than their curated version" in m for m in report.warnings)
    (q,) = curated_rows(
        w, "SELECT source_line, status, detail FROM quarantine.rows WHERE reason = 'stale_row'"
    )
    assert q[0] == 2 and q[1] == "superseded"
    assert q[2].startswith(
        "older than the curated row of product_id P1: updated_at 2026-03-01 08:00:00 before"
    )
    # P4's re-send without a time kept its curated time (it wiped it: a later out-of-order
    # re-send of P4 was applied, the check had nothing to compare against)
    (t,) = curated_rows(w, "SELECT updated_at FROM curated.products WHERE product_id = 'P4'")[0]
    assert str(t).startswith("2026-03-05 10:00:00")
    day3 = "id_product,name,price,date_upd\nP4,Pan,10,2026-03-01 08:00:00\n"
    report = Ingestor(w, engine=make(), mode="append").run(_day(tmp_path, "d3", {"products.csv": day3}))
    assert report.tables["products"].rows_stale == 1
    got = dict(curated_rows(w, "SELECT product_id, price FROM curated.products"))
    assert got["P4"] == 11.0


def test_an_older_customer_row_and_shopify_headers(tmp_path: Path) -> None:
    """Users too (their key pseudonymized: the detail does not write it), and a Shopify-style
    `Updated At` with an offset is read as UTC."""
    w = tmp_path / "w"
    day1 = "customer_id,Updated At,tier\nC1,2026-03-05 10:00:00 +0100,gold\nC2,2026-03-05 10:00:00 +0100,silver\n"
    Ingestor(w, mode="append").run(_day(tmp_path, "d1", {"users.csv": day1}))  # (users alone: appended)
    # 2026-03-05 10:00 +0100 is 09:00 UTC; C1's re-send at 08:30 UTC is older, C2's at 09:30 newer
    day2 = "customer_id,Updated At,tier\nC1,2026-03-05 08:30:00 +0000,bronze\nC2,2026-03-05 09:30:00 +0000,platinum\n"
    report = Ingestor(w, mode="append").run(_day(tmp_path, "d2", {"users.csv": day2}))
    ur = report.tables["users"]
    assert ur.rows_stale == 1 and ur.rows_updated == 1 and ur.balanced
    assert sorted(r[0] for r in curated_rows(w, "SELECT x_tier FROM curated.users")) == ["gold", "platinum"]
    (detail,) = curated_rows(w, "SELECT detail FROM quarantine.rows WHERE reason = 'stale_row'")[0]
    assert "(pseudonymized)" in detail and "C1" not in detail
