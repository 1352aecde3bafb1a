"""A BigCommerce shop's default exports (walk50D), read as downloaded: the Orders export packs an
order's products in one `Product Details` cell (read as one line per product), the line columns
(`Product Qty`, `Product Unit Price`, `Product Total Price`) are recognised, BigCommerce's
never-paid statuses are set aside, its e-mail permission column is the marketing consent, and its
catalog's `Product Visible?`, `Current Stock Level` and `A/B;C` categories are read."""

from __future__ import annotations

from pathlib import Path

from shelfwise.governance import Ingestor
from tests.conftest import curated_rows

PRODUCTS = """Product ID,Product Type,Code,Name,Brand,Price,Category,Product Visible?,Current Stock Level
77,P,ABC-1,Chair,Acme,10.00,Furniture/Chairs;Sale,Y,5
80,P,ABC-2,Desk,Acme,50.00,Furniture/Tables,N,0
81,P,ABC-3,Lamp,Acme,20.00,Office Supplies/Lighting,Y,3
"""
CUSTOMERS = """Customer ID,First Name,Last Name,Email,Receive Review/Abandoned Cart Emails?
1000,Allen,Armold,allen@example.com,Y
1001,Adam,Bellavance,adam@example.com,N
"""
UNPACKED = """Order ID,Customer ID,Order Date,Order Status,Product ID,Product Qty,Product Unit Price,Product Total Price
5000,1000,01/10/2017 11:56,Shipped,77,6,10.00,60.00
5000,1000,01/10/2017 11:56,Shipped,77,8,10.00,80.00
5001,1001,02/10/2017 11:56,Declined,81,1,20.00,20.00
5002,1001,03/10/2017 11:56,Incomplete,81,1,20.00,20.00
5003,1001,04/10/2017 11:56,Awaiting Payment,81,1,20.00,20.00
5004,1000,05/10/2017 11:56,Manual Verification Required,81,1,20.00,20.00
5005,1000,06/10/2017 11:56,Partially Refunded,80,1,50.00,50.00
5006,1000,07/10/2017 11:56,Disputed,80,2,50.00,100.00
5007,1000,08/10/2017 11:56,Awaiting Fulfillment,81,1,20.00,20.00
"""


def _shop(tmp_path: Path, orders: str, name: str = "orders-2017-12-19.csv") -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "products-2017-12-31.csv").write_text(PRODUCTS)
    (data / "customers-2017-12-31.csv").write_text(CUSTOMERS)
    (data / name).write_text(orders)
    (data / "shelfwise.toml").write_text(
        '[files]\nusers = "customers-*.csv"\nevents = "orders-*.csv"\nproducts = "products-*.csv"\n'
    )
    return data


def test_the_line_columns_are_read_and_two_lines_of_one_product_both_curated(tmp_path: Path) -> None:
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, UNPACKED))
    ev = report.tables["events"]
    mapped = ev.column_mapping
    assert mapped["Product Qty"] == "quantity"
    assert mapped["Product Unit Price"] == "unit_price"
    assert mapped["Product Total Price"] == "value"
    rows = curated_rows(
        tmp_path / "w", "SELECT product_id, quantity, value FROM curated.events ORDER BY timestamp, quantity"
    )
    # order 5000's two lines of product 77 (6 and 8 units) are two lines, not a duplicate
    assert rows[:2] == [("77", 6, 60.0), ("77", 8, 80.0)]
    assert ev.reasons.get("duplicate_row", 0) == 0


def test_bigcommerce_statuses_never_paid_are_set_aside(tmp_path: Path) -> None:
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, UNPACKED))
    ev = report.tables["events"]
    assert ev.reasons.get("failed_payment") == 1  # Declined
    assert ev.reasons.get("draft_order") == 1  # Incomplete
    assert ev.reasons.get("pending_payment") == 2  # Awaiting Payment, Manual Verification Required
    # Partially Refunded, Disputed and Awaiting Fulfillment stay purchases, and are no unknown status
    assert ev.rows_curated == 5
    assert not any("does not know" in n for n in report.notes)


def test_the_email_permission_column_is_the_marketing_consent(tmp_path: Path) -> None:
    work = tmp_path / "w"
    report = Ingestor(work).run(_shop(tmp_path, UNPACKED))
    users = report.tables["users"]
    assert users.column_mapping["Receive Review/Abandoned Cart Emails?"] == "consent_marketing"
    assert "Receive Review/Abandoned Cart Emails?" not in users.personal_columns_dropped
    assert sorted(curated_rows(work, "SELECT consent_marketing FROM curated.users")) == [(False,), (True,)]


def test_a_header_that_looks_like_an_email_permission_is_never_dropped_silently(tmp_path: Path) -> None:
    from shelfwise.governance._contracts import Classification, classify_extra_column, looks_like_consent

    for header in ("Receive Marketing Emails", "Optin", "Email Permission", "Accepts Email Marketing"):
        assert looks_like_consent(header), header
        assert classify_extra_column(header) == Classification.INTERNAL, header
    for header in ("Email", "Customer Email", "Billing Email"):
        assert not looks_like_consent(header), header


def test_the_catalog_reads_visibility_stock_and_slash_category_paths(tmp_path: Path) -> None:
    work = tmp_path / "w"
    report = Ingestor(work).run(_shop(tmp_path, UNPACKED))
    pr = report.tables["products"]
    assert pr.column_mapping["Product Visible?"] == "published"
    assert pr.column_mapping["Current Stock Level"] == "stock"
    rows = curated_rows(
        work, "SELECT product_id, published, stock, category FROM curated.products ORDER BY 1"
    )
    assert rows == [
        ("77", True, 5, "Furniture > Chairs"),
        ("80", False, 0, "Furniture > Tables"),
        ("81", True, 3, "Office Supplies > Lighting"),
    ]
    said = [w for w in report.warnings if "several category paths" in w]
    assert len(said) == 1 and "'Furniture/Chairs;Sale'" in said[0] and "';'" in said[0], report.warnings


def _details(*products: tuple[str, int, str, float]) -> str:
    return " | ".join(
        f"Product ID: {pid}, Product Qty: {n}, Product SKU: SKU-{pid}, Product Name: {name}, Product Weight: 1.0, "
        f"Product Variation Details: , Product Unit Price: {price:.2f}, Product Total Price: {price * n:.2f}"
        for pid, n, name, price in products
    )


PACKED = (
    "Order ID,Customer ID,Customer Email,Order Date,Order Status,Product Details\n"
    f'5000,1000,allen@example.com,01/10/2017 11:56,Shipped,"{_details(("77", 2, "Chair, black", 10.0), ("81", 1, "Lamp", 20.0))}"\n'
    f'5001,1001,adam@example.com,02/10/2017 11:56,Refunded,"{_details(("80", 1, "Desk", 50.0))}"\n'
    # the second product cannot be read (no Product ID): that line alone is quarantined
    '5002,1000,allen@example.com,03/10/2017 11:56,Completed,"'
    + _details(("81", 3, "Lamp", 20.0))
    + ' | Product Qty: 1, Product Name: Mystery"\n'
)


def test_the_packed_product_details_are_read_as_one_line_per_product(tmp_path: Path) -> None:
    work = tmp_path / "w"
    report = Ingestor(work).run(_shop(tmp_path, PACKED))
    ev = report.tables["events"]
    # 3 orders held 5 lines: rows in are the lines read, and balanced
    assert ev.rows_in == 5
    assert (ev.rows_curated, ev.rows_quarantined) == (3, 2)
    assert ev.reasons == {"refunded_order": 1, "malformed_row": 1}
    assert any(
        "3 order(s) packed their products in 'Product Details'" in n and "held 5 order line(s)" in n
        for n in report.notes
    ), report.notes
    rows = curated_rows(
        work,
        "SELECT product_id, quantity, value, unit_price FROM curated.events ORDER BY timestamp, product_id",
    )
    assert rows == [("77", 2, 20.0, 10.0), ("81", 1, 20.0, 20.0), ("81", 3, 60.0, 20.0)]
    quarantined = curated_rows(
        work, "SELECT source_file, source_line, reason, detail FROM quarantine.rows ORDER BY source_line"
    )
    assert [(Path(f).name, line, reason) for f, line, reason, _ in quarantined] == [
        ("orders-2017-12-19.csv", 3, "refunded_order"),
        ("orders-2017-12-19.csv", 4, "malformed_row"),
    ]
    assert "product 1 of the row's packed Product Details" in quarantined[0][3]
    detail = quarantined[1][3]
    assert "unreadable packed product" in detail and "Product ID" in detail and "product 2 of" in detail, (
        detail
    )


def test_a_free_text_product_details_column_is_not_unpacked(tmp_path: Path) -> None:
    orders = (
        "Order ID,Customer ID,Order Date,Order Status,Product Details,Product Qty\n"
        "5000,1000,01/10/2017 11:56,Shipped,A nice chair,2\n"
        "5001,1001,02/10/2017 11:56,Shipped,A desk,1\n"
    )
    orders = orders.replace("Product Details,Product Qty", "Product Details,Product Qty,SKU")
    orders = orders.replace(",2\n", ",2,77\n").replace(",1\n", ",1,81\n")
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, orders))
    ev = report.tables["events"]
    assert (ev.rows_in, ev.rows_curated) == (2, 2)
    assert not any("packed their products" in n for n in report.notes)


def test_two_variants_of_one_product_in_an_order_are_two_lines_and_a_whole_row_reject_names_no_product(
    tmp_path: Path,
) -> None:
    """Two variants of product 77 (sizes S and M, one `Product ID`) in order 5000 were two equal
    lines: the second quarantined as a duplicate, 10.00 of revenue lost (the review of
    5c33115..); they carry an event id each now (the order and the place), and a re-send of
    the order is recognised line for line. A row rejected whole (an extra field) said
    "(product 1 of the row's packed Product Details)"."""
    orders = (
        "Order ID,Customer ID,Customer Email,Order Date,Order Status,Product Details\n"
        f'5000,1000,allen@example.com,01/10/2017 11:56,Shipped,"{_details(("77", 1, "Shirt", 10.0), ("77", 1, "Shirt", 10.0))}"\n'
        f'5001,1001,adam@example.com,02/10/2017 11:56,Shipped,"{_details(("80", 1, "Desk", 50.0))}",EXTRA\n'
    )
    work = tmp_path / "w"
    ev = Ingestor(work).run(_shop(tmp_path, orders)).tables["events"]
    assert (ev.rows_in, ev.rows_curated, ev.reasons) == (3, 2, {"malformed_row": 1})
    got = curated_rows(work, "SELECT session_id, product_id, value, event_id FROM curated.events ORDER BY 4")
    assert got == [("5000", "77", 10.0, "5000#1"), ("5000", "77", 10.0, "5000#2")]
    (detail,) = curated_rows(work, "SELECT detail FROM quarantine.rows WHERE reason = 'malformed_row'")[0]
    assert "field(s) where the header has" in detail and "packed Product Details" not in detail, detail
    again = Ingestor(work, mode="append").run(_shop(tmp_path, orders)).tables["events"]
    assert (again.rows_curated, again.rows_total) == (0, 2)


def test_an_order_packing_a_thousand_products_is_read_whole_beside_its_neighbours(tmp_path: Path) -> None:
    """An order of 1,000 packed products stopped the whole file with a SourceError (its lines
    were numbered row * 1000 + k): every valid order of the file was lost. The numbering scales
    to the largest order, and a line's quarantine still names its row and its product's place."""
    big = _details(*[("77", 1, "Chair", 10.0)] * 1000 + [("81", 1, "Lamp", 20.0)])
    orders = (
        "Order ID,Customer ID,Customer Email,Order Date,Order Status,Product Details\n"
        f'5000,1000,allen@example.com,01/10/2017 11:56,Shipped,"{_details(("80", 1, "Desk", 50.0))}"\n'
        f'5001,1001,adam@example.com,02/10/2017 11:56,Shipped,"{big}'
        ' | Product Qty: 1, Product Name: Mystery"\n'
        f'5002,1000,allen@example.com,03/10/2017 11:56,Shipped,"{_details(("81", 2, "Lamp", 20.0))}"\n'
    )
    work = tmp_path / "w"
    ev = Ingestor(work).run(_shop(tmp_path, orders)).tables["events"]
    assert (ev.rows_in, ev.rows_curated, ev.reasons) == (1004, 1003, {"malformed_row": 1})
    got = curated_rows(work, "SELECT session_id, count(*) FROM curated.events GROUP BY 1 ORDER BY 1")
    assert got == [("5000", 1), ("5001", 1001), ("5002", 1)]
    ((name, line, detail),) = curated_rows(
        work, "SELECT source_file, source_line, detail FROM quarantine.rows"
    )
    assert (Path(name).name, line) == ("orders-2017-12-19.csv", 3)
    assert "product 1002 of the row's packed Product Details" in detail, detail


def test_a_cut_last_line_of_a_packed_orders_file_is_warned_of_and_replaced_by_its_complete_line(
    tmp_path: Path,
) -> None:
    """A packed orders export read in place whose last line ends without a newline (cut in
    transit: order 5001's total `150.00` arrived as `15`) went unsaid, since the unpacked copy
    never learnt that its source was cut, and the complete re-send added a second purchase. The
    warning names the file's own row (not the scaled `:3001`), and the complete line replaces
    the cut one."""
    full = (
        "Order ID,Customer ID,Customer Email,Order Date,Order Status,Product Details\n"
        f'5000,1000,allen@example.com,01/10/2017 11:56,Shipped,"{_details(("77", 2, "Chair", 10.0), ("81", 1, "Lamp", 20.0))}"\n'
        f'5001,1001,adam@example.com,02/10/2017 11:56,Shipped,"{_details(("80", 3, "Desk", 50.0))}"\n'
    )
    cut = full.removesuffix('0.00"\n') + '"'  # (no final newline)
    work = tmp_path / "w"
    report = Ingestor(work).run(_shop(tmp_path, cut))
    said = [w for w in report.warnings if "final newline" in w]
    assert len(said) == 1 and said[0].startswith(f"{tmp_path / 'data' / 'orders-2017-12-19.csv'}:3: "), said
    query = "SELECT session_id, product_id, value FROM curated.events ORDER BY 1, 2"
    assert curated_rows(work, query)[-1] == ("5001", "80", 15.0)
    again = Ingestor(work, mode="append").run(_shop(tmp_path, full))
    ev = again.tables["events"]
    assert (ev.rows_total, ev.rows_updated) == (3, 1), ev
    assert curated_rows(work, query) == [("5000", "77", 20.0), ("5000", "81", 20.0), ("5001", "80", 150.0)]
    done = [n for n in again.notes if "delivered cut off" in n]
    assert len(done) == 1 and "line 3 (completing line 3 of load" in done[0], again.notes
