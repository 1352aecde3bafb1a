"""A WooCommerce shop's orders export (walk49a): a row per order line, `Customer User ID` the
customer (0 for every guest checkout), `Order Status` the order's status. Guests are no
customer: their lines are anonymous sessions (one per order), in no profile or audience, and
"0" is no subject of a privacy request; the customer column is recognised without a map."""

from __future__ import annotations

from pathlib import Path

from shelfwise.governance import Ingestor, Pseudonymizer, SecretStore
from tests.conftest import curated_rows

PRODUCTS = "product_id,title,category\nP1,red kettle,Kitchen\nP2,blue mug,Kitchen\nP3,desk lamp,Home\n"
ORDERS = """Order Number,Order Date,Order Status,Customer User ID,Billing Email,SKU,Quantity
5000,2024-03-01 10:00:00,completed,433,a@example.com,P1,1
5000,2024-03-01 10:00:00,completed,433,a@example.com,P2,2
5001,2024-03-02 10:00:00,completed,0,g1@example.com,P1,1
5001,2024-03-02 10:00:00,completed,0,g1@example.com,P3,1
5002,2024-03-03 10:00:00,completed,0,g2@example.com,P2,1
5003,2024-03-04 10:00:00,refunded,434,b@example.com,P1,1
5004,2024-03-05 10:00:00,completed,434,b@example.com,P3,1
"""


def _shop(tmp_path: Path, orders: str = ORDERS, toml: str | None = None) -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "products.csv").write_text(PRODUCTS)
    (data / "orders.csv").write_text(orders)
    if toml is not None:
        (data / "shelfwise.toml").write_text(toml)
    return data


def test_customer_user_id_is_read_as_the_user_id_without_a_map(tmp_path: Path) -> None:
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path))
    ev = report.tables["events"]
    assert ev.column_mapping["Customer User ID"] == "user_id"
    assert not any("no user_id column" in n for n in report.notes)
    pseudo = Pseudonymizer(SecretStore(tmp_path / "w").pseudonym_key())
    users = dict(curated_rows(tmp_path / "w", "SELECT user_id, count(*) FROM curated.events GROUP BY 1"))
    assert users[pseudo("433")] == 2 and users[pseudo("434")] == 1


def test_a_first_load_says_a_customer_column_it_does_not_read(tmp_path: Path) -> None:
    orders = ORDERS.replace("Customer User ID", "Buyer Account No")
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, orders))
    warned = [w for w in report.warnings if "'Buyer Account No' is named like a customer id" in w]
    assert warned and "--map 'events.user_id=Buyer Account No'" in warned[0]
    assert '[map.events]\n    user_id = "Buyer Account No"' in warned[0]
