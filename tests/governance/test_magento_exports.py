"""Magento 2 exports (walk49b): a customers export's billing address and newsletter status, a
catalog_product export's store-view rows, visibility, status and stock, and its category paths;
an orders-only delivery beside a catalog."""

from __future__ import annotations

from shelfwise.governance import Ingestor
from tests.conftest import curated_rows

EVENTS = "user_id,product_id,event_type,timestamp\n1000,P1,purchase,2024-01-01T10:00:00Z\n"


def test_a_billing_address_never_reaches_the_curated_users(tmp_path):
    """Magento's `billing_full` (`1 Main St Providence Rhode Island 2908`) was kept as the
    profile column `x_billing_full` and reached the analyst export; a column named for nothing
    personal whose values are street addresses is left out too, and the note says so."""
    from shelfwise.governance._contracts import Classification, classify_extra_column

    d = tmp_path / "d"
    d.mkdir()
    (d / "users.csv").write_text(
        "user_id,billing_full,shipping_full,where_to,group_id\n"
        "1000,1 Main St Providence Rhode Island 2908,1 Main St Providence,12 Elm Road Leeds,1\n"
        "1001,221B Baker Street London,221B Baker Street,Hauptstr. 5 Berlin,2\n"
    )
    (d / "events.csv").write_text(EVENTS)
    work = tmp_path / "w"
    report = Ingestor(work).run(d)
    assert set(report.tables["users"].personal_columns_dropped) == {
        "billing_full",
        "shipping_full",
        "where_to",
    }
    rows = curated_rows(work, "SELECT * FROM curated.users")
    assert "Main St" not in str(rows) and "Baker" not in str(rows) and "Hauptstr" not in str(rows)
    assert curated_rows(work, "SELECT x_group_id FROM curated.users ORDER BY user_id") == [("1",), ("2",)]
    assert any("'where_to' holds street addresses" in n for n in report.notes)
    for personal in ("billing_full", "billing_address", "shipping_full", "street", "address_line_1",
                     "billing_street", "Shipping Address Line 2", "delivery_address"):  # fmt: skip
        assert classify_extra_column(personal) is Classification.PERSONAL, personal
    for kept in ("billing_cycle", "free_shipping_member", "billing_region", "Ship Mode", "full_price"):
        assert classify_extra_column(kept) is Classification.INTERNAL, kept
