"""A WooCommerce shop's orders export (walk49a): a row per order line, `Customer User ID` the
customer (0 for every guest checkout), `Order Status` the order's status. Guests are no
customer: their lines are anonymous sessions (one per order), in no profile or audience, and
"0" is no subject of a privacy request; the customer column is recognised without a map."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfwise.errors import ShelfwiseError
from shelfwise.governance import Ingestor, Pseudonymizer, SecretStore, anonymous_user_id, is_anonymous
from shelfwise.governance._contracts import EVENTS
from shelfwise.governance._row_check import check_record
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


@pytest.mark.parametrize("mapped", [False, True])
def test_guest_checkouts_are_anonymous_sessions_one_per_order(tmp_path: Path, mapped: bool) -> None:
    toml = '[map.events]\nuser_id = "Customer User ID"\nproduct_id = "SKU"\n' if mapped else None
    work = tmp_path / "w"
    report = Ingestor(work).run(_shop(tmp_path, toml=toml))
    ev = report.tables["events"]
    assert (ev.rows_in, ev.rows_curated, ev.anonymous_rows) == (7, 6, 3)
    assert any("3 row(s) name the guest user id '0'" in n and "anonymous sessions" in n for n in report.notes)
    pseudo = Pseudonymizer(SecretStore(work).pseudonym_key())
    users = dict(curated_rows(work, "SELECT user_id, count(*) FROM curated.events GROUP BY 1"))
    assert pseudo("0") not in users
    assert users == {
        pseudo("433"): 2,
        pseudo("434"): 1,
        pseudo(anonymous_user_id("5001")): 2,  # the order's two lines: one session
        pseudo(anonymous_user_id("5002")): 1,
    }
    # no profile, no audience: the customers are the two who have ids
    from shelfwise.insights._data import load_curated

    customers, _, _ = load_curated(work, None, consent="personalization")
    assert set(customers["user_id"]) == {pseudo("433"), pseudo("434")}
    assert not customers["user_id"].map(is_anonymous).any()


def test_the_guest_id_is_no_subject_of_a_privacy_request(tmp_path: Path) -> None:
    from shelfwise.governance._erase import erase_user
    from shelfwise.governance._subject_access import subject_access

    work = tmp_path / "w"
    Ingestor(work).run(_shop(tmp_path))
    with pytest.raises(ShelfwiseError, match="guest checkout's placeholder id, no customer"):
        erase_user(work, "0")
    with pytest.raises(ShelfwiseError, match="guest checkout's placeholder id, no customer"):
        subject_access(work, "0")
    erase_user(work, "433")  # a customer still is


def test_a_zero_id_without_a_session_is_a_customer(tmp_path: Path) -> None:
    """A dataset whose visitor ids count from 0 (no session column): 0 is a visitor's id."""
    from shelfwise.governance._erase import erase_user

    data = tmp_path / "data"
    data.mkdir()
    (data / "products.csv").write_text(PRODUCTS)
    (data / "events.csv").write_text(
        "user_id,product_id,event_type,timestamp\n0,P1,view,2024-03-01T10:00:00Z\n1,P2,view,2024-03-01T10:00:00Z\n"
    )
    work = tmp_path / "w"
    ev = Ingestor(work).run(data).tables["events"]
    assert (ev.rows_curated, ev.anonymous_rows) == (2, 0)
    pseudo = Pseudonymizer(SecretStore(work).pseudonym_key())
    assert (pseudo("0"),) in curated_rows(work, "SELECT user_id FROM curated.events")
    erase_user(work, "0")  # a customer of that workdir: erasable


def test_a_posted_guest_id_is_its_sessions_as_the_load_reads_it() -> None:
    """`POST /v1/events` checks each event with `check_record` (`serving._intake`)."""
    base = {"product_id": "P1", "event_type": "view", "timestamp": "2024-03-01T10:00:00Z"}
    for guest in ("0", "0.0", "-1", "Guest", "anonymous"):
        got = check_record(EVENTS, {**base, "user_id": guest, "session_id": "s7"})
        assert got.values["user_id"] == anonymous_user_id("s7"), guest
    assert check_record(EVENTS, {**base, "user_id": "0"}).values["user_id"] == "0"  # no session
    assert check_record(EVENTS, {**base, "user_id": "10", "session_id": "s7"}).values["user_id"] == "10"


def test_a_first_load_says_a_customer_column_it_does_not_read(tmp_path: Path) -> None:
    orders = ORDERS.replace("Customer User ID", "Buyer Account No")
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, orders))
    warned = [w for w in report.warnings if "'Buyer Account No' is named like a customer id" in w]
    assert warned and "--map 'events.user_id=Buyer Account No'" in warned[0]
    assert '[map.events]\n    user_id = "Buyer Account No"' in warned[0]


def test_the_order_status_is_not_said_ignored(tmp_path: Path) -> None:
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path))
    ev = report.tables["events"]
    assert ev.reasons == {"refunded_order": 1}
    assert "Order Status" not in ev.ignored_columns and "Billing Email" in ev.ignored_columns
    assert any("'Order Status' is read for the order's status" in n for n in report.notes)


def test_a_customers_attribute_column_is_not_named_as_the_customers_id():
    """The customer-id look-alike rule read `Customer Group Id` (Magento), `Customer Tax ID`,
    `Customer Phone No`, `User Agent ID` and `Visitor Country Id` as a customer's id (a review):
    an anonymous delivery beside them was refused, and the advice would have keyed a whole group
    of customers on one id. A customer's own id columns are still read as such."""
    from shelfwise.governance._load_columns import _names_a_person

    for header in ("Customer Group Id", "Customer Tax ID", "Customer Phone No", "User Agent ID",
                   "Visitor Country Id", "Customer Store Id", "Customer Order No"):  # fmt: skip
        assert not _names_a_person(header), header
    for header in ("Buyer Account No", "Customer Number", "client_ref", "Customer ID", "Member No"):
        assert _names_a_person(header), header


def test_guests_curated_as_one_customer_before_are_said(tmp_path: Path) -> None:
    """A shop loaded before guest ids were read as anonymous sessions holds its guests as one
    customer "0"; a re-sent line of their orders then no longer matches (a review: two rows of one
    order line). An append that reads guests anew says so, with the one full load that mends it."""
    before = "\n".join(",".join(r.split(",")[1:]) for r in ORDERS.splitlines()) + "\n"  # no order column
    data = _shop(tmp_path, before)
    first = Ingestor(tmp_path / "w").run(data)
    assert first.tables["events"].rows_curated == 7
    assert not [w for w in first.warnings if "guest checkouts" in w]
    (data / "orders.csv").write_text(ORDERS)
    again = Ingestor(tmp_path / "w", mode="append").run(data)
    said = [w for w in again.warnings if "guest checkouts as one customer" in w]
    assert len(said) == 1 and "3 of the guest id '0'" in said[0] and "without --append" in said[0], (
        again.warnings
    )
