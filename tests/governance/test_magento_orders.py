"""A Magento 2 shop's order-lines export (walk49b): `increment_id` the order number, `item_id`
the order LINE's id beside `sku` the product, `status` Magento's order status, guest lines with
an empty `customer_id`, and a configurable product's parent line (the price) with its child line
(`parent_item_id` naming the parent's `item_id`, price 0)."""

from __future__ import annotations

from pathlib import Path

from shelfwise.governance import Ingestor
from tests.conftest import curated_rows

PRODUCTS = "sku,name,price\nSKU-A,red kettle,10\nSKU-B,blue mug,5\nSKU-C,desk lamp,20\n"
HEADER = "increment_id,created_at,status,customer_id,customer_is_guest,item_id,parent_item_id,product_type,sku,qty_ordered,price,row_total\n"
ORDERS = HEADER + (
    "100000001,2024-03-01 10:00:00,complete,11,0,50001,,simple,SKU-A,1,10,10\n"
    "100000001,2024-03-01 10:00:00,complete,11,0,50002,,simple,SKU-B,2,5,10\n"
    "100000002,2024-03-02 10:00:00,complete,,1,50003,,simple,SKU-C,1,20,20\n"
    "100000003,2024-03-03 10:00:00,canceled,12,0,50004,,simple,SKU-A,1,10,10\n"
    "100000004,2024-03-04 10:00:00,complete,12,0,50005,,simple,SKU-C,1,20,20\n"
)


def _shop(tmp_path: Path, orders: str = ORDERS, products: str | None = PRODUCTS, toml: str = "") -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    if products is not None:
        (data / "products.csv").write_text(products)
    (data / "orders.csv").write_text(orders)
    catalog = '[map.products]\nproduct_id = "sku"\ntitle = "name"\n' if products is not None else ""
    (data / "shelfwise.toml").write_text(catalog + toml)
    return data


def test_increment_id_is_the_order_and_guests_are_sessions(tmp_path: Path) -> None:
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, toml='[map.events]\nproduct_id = "sku"\n'))
    ev = report.tables["events"]
    assert ev.column_mapping["increment_id"] == "session_id"
    # the status is read: the canceled order's line is set aside, not a purchase
    assert ev.rows_set_aside == 1
    # the guest line is an anonymous session's purchase, not quarantined missing_required
    assert (ev.rows_in, ev.rows_curated, ev.anonymous_rows) == (5, 4, 1)
    (n,) = curated_rows(tmp_path / "w", "SELECT count(*) FROM curated.events WHERE event_type = 'purchase'")[
        0
    ]
    assert n == 4


def test_sku_not_the_line_item_id_is_the_product(tmp_path: Path) -> None:
    """`item_id` (the line's id, a product id alias) and `sku` both could be the product id:
    the catalog is keyed on the SKUs, so `sku` is read, and a note says the choice."""
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path))
    ev = report.tables["events"]
    assert ev.column_mapping["sku"] == "product_id"
    assert "item_id" in ev.ignored_columns
    assert any("'sku' is read as events.product_id" in n and "catalog" in n for n in report.notes)
    products = {r[0] for r in curated_rows(tmp_path / "w", "SELECT DISTINCT product_id FROM curated.events")}
    assert products == {"SKU-A", "SKU-B", "SKU-C"}


def test_without_a_catalog_an_order_export_reads_sku(tmp_path: Path) -> None:
    """No products file and nothing curated: the names decide, `sku` over the line's `item_id`."""
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, products=None))
    assert report.tables["events"].column_mapping["sku"] == "product_id"
    products = {r[0] for r in curated_rows(tmp_path / "w", "SELECT DISTINCT product_id FROM curated.events")}
    assert products == {"SKU-A", "SKU-B", "SKU-C"}
    assert any("likely the line's own id" in n for n in report.notes)


STATUSES = HEADER + (
    "100000011,2024-03-01 10:00:00,complete,11,0,50011,,simple,SKU-A,1,10,10\n"
    "100000012,2024-03-02 10:00:00,closed,11,0,50012,,simple,SKU-B,1,5,5\n"
    "100000013,2024-03-03 10:00:00,holded,12,0,50013,,simple,SKU-C,1,20,20\n"
    "100000014,2024-03-04 10:00:00,payment_review,12,0,50014,,simple,SKU-A,1,10,10\n"
    "100000015,2024-03-05 10:00:00,fraud,13,0,50015,,simple,SKU-B,1,5,5\n"
    "100000016,2024-03-06 10:00:00,processing,13,0,50016,,simple,SKU-C,1,20,20\n"
)


def _reasons(work: Path) -> dict[str, int]:
    return dict(curated_rows(work, "SELECT reason, count(*) FROM quarantine.rows GROUP BY 1"))


def test_magentos_closed_fraud_holded_and_payment_review_are_no_purchases(tmp_path: Path) -> None:
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, orders=STATUSES))
    ev = report.tables["events"]
    assert (ev.rows_in, ev.rows_curated, ev.rows_set_aside) == (6, 2, 4)
    assert _reasons(tmp_path / "w") == {
        "refunded_order": 1,  # closed: refunded in full in Magento
        "on_hold_order": 1,
        "pending_payment": 1,
        "suspected_fraud": 1,
    }
    assert any("its 'closed' is an order refunded in full" in n for n in report.notes)


def test_closed_beside_no_magento_status_stays_a_purchase(tmp_path: Path) -> None:
    """A shop whose `closed` is a finished order (no `holded`, `payment_review` nor `complete`)."""
    orders = "\n".join(
        line
        for line in STATUSES.splitlines()
        if not any(s in line for s in (",complete,", ",holded,", ",payment_review,"))
    )
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, orders=orders + "\n"))
    ev = report.tables["events"]
    assert (ev.rows_in, ev.rows_curated, ev.rows_set_aside) == (3, 2, 1)
    assert _reasons(tmp_path / "w") == {"suspected_fraud": 1}
    assert any("'closed' 1 line(s)" in n and "read as purchases" in n for n in report.notes)


UNITS = '[map.events]\nquantity = "qty_ordered"\nvalue = "row_total"\n'


def test_a_configurable_items_child_line_is_set_aside_the_parent_counted_once(tmp_path: Path) -> None:
    orders = HEADER + (
        "100000021,2024-03-01 10:00:00,complete,11,0,50021,,configurable,SKU-A,4,10,40\n"
        "100000021,2024-03-01 10:00:00,complete,11,0,50022,50021,simple,SKU-A,4,0,0\n"
        "100000021,2024-03-01 10:00:00,complete,11,0,50023,,simple,SKU-B,1,5,5\n"
        # a parent_item_id naming no line of its order: no child of anything here, a purchase
        "100000022,2024-03-02 10:00:00,complete,12,0,50024,50021,simple,SKU-C,1,20,20\n"
    )
    work = tmp_path / "w"
    report = Ingestor(work).run(_shop(tmp_path, orders=orders, toml=UNITS))
    ev = report.tables["events"]
    assert (ev.rows_in, ev.rows_curated, ev.rows_set_aside) == (4, 3, 1)
    (units, value) = curated_rows(work, "SELECT sum(quantity), sum(value) FROM curated.events")[0]
    assert (units, value) == (6, 65)  # not 10: the child line's 4 units counted once
    assert _reasons(work) == {"child_line": 1}
    lines = dict(curated_rows(work, "SELECT product_id, count(*) FROM curated.events GROUP BY 1"))
    assert lines == {"SKU-A": 1, "SKU-B": 1, "SKU-C": 1}
    assert "parent_item_id" not in ev.ignored_columns


def test_a_product_id_column_is_never_read_past_for_a_line_id(tmp_path):
    """Integer product ids and order line ids overlap: with one retired product in the sample,
    a file's `product_id` was read past for its `item_id` (a review): every event then named an
    existing, wrong product. A column named product_id stays; an `item_id` that is the product
    (it matches the catalog) stays beside a `sku` that matches too."""
    from shelfwise.governance._contracts import EVENTS
    from shelfwise.governance._load_columns import _product_column

    header = ["order_id", "product_id", "item_id", "timestamp"]
    sample = {
        "product_id": [str(i) for i in range(1, 200)] + ["9999"],
        "item_id": [str(i) for i in range(1, 201)],
    }
    notes: list[str] = []

    def known(vals: list[str]) -> int:
        return sum(1 for v in vals if int(v) <= 200)

    chosen = _product_column(
        EVENTS, header, "product_id", set(), tmp_path / "e.csv", lambda: sample, known, notes
    )
    assert chosen == "product_id", notes
    header = ["order_id", "item_id", "sku", "timestamp"]
    sample = {"item_id": ["1", "2", "3"], "sku": ["1", "2", "3"]}
    assert (
        _product_column(EVENTS, header, "item_id", set(), tmp_path / "e.csv", lambda: sample, known, [])
        == "item_id"
    )


def test_qty_ordered_and_row_total_are_read_without_a_map(tmp_path: Path) -> None:
    """Magento 2's order items name the units `qty_ordered` and the line's total `row_total`:
    without a map they were ignored, every line one unit worth the catalog's price."""
    work = tmp_path / "w"
    Ingestor(work).run(_shop(tmp_path))
    (units, value) = curated_rows(work, "SELECT sum(quantity), sum(value) FROM curated.events")[0]
    assert (units, value) == (5, 60)
