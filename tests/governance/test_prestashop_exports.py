"""A PrestaShop 8 shop's exports (walk50A): semicolon-separated, fully quoted; the order lines
(`order_detail`) name the order by `id_order`, its status by `current_state` (the state's name),
the customer by `id_customer`; the customers export has `newsletter`, `optin` and `company`; the
products export `active` (0/1), `quantity` (stock), `description_short` (HTML) and
`wholesale_price`."""

from __future__ import annotations

from pathlib import Path

import pytest

from shelfwise.errors import ShelfwiseError, SourceError
from shelfwise.governance import Ingestor
from shelfwise.governance._mapping import load_column_map, parse_map_flags
from tests.conftest import curated_rows

PRODUCTS = (
    '"id_product";"reference";"name";"price";"wholesale_price";"active";"category";"quantity";"description_short"\n'
    '"1";"R-1";"red kettle";"10";"6";"1";"Kitchen";"48";"<p>A <strong>red</strong> kettle &ndash; 1l</p>"\n'
    '"2";"R-2";"blue mug";"5";"2";"1";"Kitchen";"0";"<p>A blue mug</p>"\n'
    '"3";"R-3";"desk lamp";"20";"12";"0";"Office";"7";"<p>A lamp</p>"\n'
)
CUSTOMERS = (
    '"id_customer";"id_gender";"firstname";"lastname";"email";"birthday";"newsletter";"optin";"active";"date_add";"company"\n'
    '"11";"1";"Ann";"Lee";"ann@example.com";"0000-00-00";"1";"0";"1";"2016-07-04 10:11:12";"Ann Lee Plumbing"\n'
    '"12";"2";"Bo";"Ng";"bo@example.com";"1958-02-01";"0";"1";"1";"2016-04-19 10:11:12";""\n'
    '"13";"2";"Cy";"Do";"cy@example.com";"1970-02-01";"1";"1";"1";"2016-04-19 10:11:12";""\n'
)
HEADER = (
    '"id_order";"reference";"id_customer";"product_id";"product_reference";"product_name";'
    '"product_quantity";"unit_price_tax_incl";"total_price_tax_incl";"date_add";"{status}"\n'
)
# PrestaShop 8's twelve default order states, one order each
STATES = {
    "Payment accepted": None,
    "Remote payment accepted": None,
    "Processing in progress": None,
    "Shipped": None,
    "Delivered": None,
    "On backorder (paid)": None,
    # cash on delivery: placed and shipped, paid on delivery - a purchase
    "Awaiting cash on delivery validation": None,
    "Canceled": "cancelled_order",
    "Refunded": "refunded_order",
    "Payment error": "failed_payment",
    "Awaiting bank wire payment": "pending_payment",
    "Awaiting check payment": "pending_payment",
    "On backorder (not paid)": "pending_payment",
}


def _orders(status_header: str = "current_state", states: dict[str, str | None] = STATES) -> str:
    lines = [HEADER.format(status=status_header)]
    for i, state in enumerate(states, 1):
        lines.append(
            f'"{i}";"REF{i}";"{11 + i % 3}";"{1 + i % 3}";"R-{1 + i % 3}";"thing";"1";"10.000000";'
            f'"10.000000";"2017-10-{i:02d} 10:00:00";"{state}"\n'
        )
    return "".join(lines)


def _shop(tmp_path: Path, orders: str, toml: str = "") -> Path:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "product_export.csv").write_text(PRODUCTS)
    (data / "customer_export.csv").write_text(CUSTOMERS)
    (data / "order_detail_2017-12-20.csv").write_text(orders)
    files = (
        '[files]\nusers = "customer_export.csv"\nevents = "order_detail_*.csv"\n'
        'products = "product_export.csv"\n'
    )
    (data / "shelfwise.toml").write_text(files + toml)
    return data


def _reasons(work: Path) -> dict[str, int]:
    return dict(curated_rows(work, "SELECT reason, count(*) FROM quarantine.rows GROUP BY 1"))


def test_current_state_is_read_and_prestashops_default_states_are_known(tmp_path: Path) -> None:
    """`current_state` was never read (cancelled and refunded orders curated as purchases, no
    word said); read, none of PrestaShop's state names was known."""
    work = tmp_path / "w"
    report = Ingestor(work).run(_shop(tmp_path, _orders()))
    ev = report.tables["events"]
    assert "current_state" not in ev.ignored_columns
    assert (ev.rows_in, ev.rows_curated, ev.rows_set_aside) == (13, 7, 6)
    assert _reasons(work) == {
        "cancelled_order": 1,
        "refunded_order": 1,
        "failed_payment": 1,
        "pending_payment": 3,
    }
    assert not [n for n in report.notes if "does not know" in n], report.notes


def test_a_state_column_is_the_status_only_where_it_holds_statuses(tmp_path: Path) -> None:
    work = tmp_path / "w"
    report = Ingestor(work).run(_shop(tmp_path, _orders("state")))
    assert report.tables["events"].rows_set_aside == 6
    # a `state` that is a region of the customer's address is no status: nothing set aside
    regions = {s: None for s in ("California", "Texas", "Ohio")}
    report = Ingestor(tmp_path / "w2").run(_shop(tmp_path, _orders("state", regions)))
    ev = report.tables["events"]
    assert (ev.rows_curated, ev.rows_set_aside) == (3, 0)
    assert "state" in ev.ignored_columns


def test_the_status_column_can_be_mapped(tmp_path: Path) -> None:
    """A status column by a name shelfwise does not know (`Etat`): `[map.events] order_status`
    or `--map events.order_status=HEADER` reads it (the map could not name it)."""
    toml = '[map.events]\norder_status = "Etat"\n'
    report = Ingestor(tmp_path / "w").run(_shop(tmp_path, _orders("Etat"), toml))
    ev = report.tables["events"]
    assert ev.rows_set_aside == 6
    assert "Etat" not in ev.ignored_columns
    data = _shop(tmp_path, _orders("Etat"), "")
    cmap = load_column_map(data, ["events.order_status=Etat"])
    assert cmap.reads == {"events": {"order_status": "Etat"}}
    report = Ingestor(tmp_path / "w2", column_map=cmap).run(data)
    assert report.tables["events"].rows_set_aside == 6
    # a header the file lacks: a clear error naming the file
    with pytest.raises(
        SourceError, match="order_detail_2017-12-20.csv:1: .*order_status to 'Statut'.*not a column"
    ):
        Ingestor(tmp_path / "w3", column_map=load_column_map(data, ["events.order_status=Statut"])).run(data)
    with pytest.raises(ShelfwiseError, match="order_status \\(read, not curated\\)"):
        parse_map_flags(["events.order_state=Etat"])


def test_id_order_groups_an_orders_lines_and_quantities_are_read(tmp_path: Path) -> None:
    """Without a map, `id_order` was not read as the order: two lines of one product in one order
    (quantities 6 and 8) were one exact duplicate, quarantined; quantities and values ignored."""
    orders = HEADER.format(status="current_state") + (
        '"255";"ABC";"11";"1";"R-1";"red kettle";"6";"12.792000";"76.752000";"2017-10-01 10:00:00";"Shipped"\n'
        '"255";"ABC";"11";"1";"R-1";"red kettle";"8";"12.792000";"102.336000";"2017-10-01 10:00:00";"Shipped"\n'
        '"256";"ABD";"12";"2";"R-2";"blue mug";"1";"5.000000";"5.000000";"2017-10-02 10:00:00";"Shipped"\n'
    )
    work = tmp_path / "w"
    report = Ingestor(work).run(_shop(tmp_path, orders))
    ev = report.tables["events"]
    assert ev.column_mapping["id_order"] == "session_id"
    assert ev.column_mapping["product_quantity"] == "quantity"
    assert ev.column_mapping["unit_price_tax_incl"] == "unit_price"
    assert ev.column_mapping["total_price_tax_incl"] == "value"
    assert ev.column_mapping["id_customer"] == "user_id"
    assert ev.column_mapping["date_add"] == "timestamp"
    assert (ev.rows_in, ev.rows_curated, ev.rows_quarantined) == (3, 3, 0)
    (units, value, orders_n) = curated_rows(
        work, "SELECT sum(quantity), round(sum(value), 3), count(DISTINCT session_id) FROM curated.events"
    )[0]
    assert (units, value, orders_n) == (15, 184.088, 2)


def test_a_users_key_is_advised_by_the_events_ids_not_the_email(tmp_path: Path) -> None:
    """A users file without a user_id column was advised its `email` first, though the events
    name customers by an id column the users file has too (keyed on e-mail, no customer of the
    events had a profile, and 152 who had said no to marketing became contactable)."""
    customers = CUSTOMERS.replace('"id_customer"', '"id_client"')
    orders = _orders().replace('"id_customer"', '"id_client"')
    data = _shop(tmp_path, orders, '[map.events]\nuser_id = "id_client"\n')
    (data / "customer_export.csv").write_text(customers)
    with pytest.raises(SourceError) as err:
        Ingestor(tmp_path / "w").run(data)
    said = str(err.value)
    assert "--map 'users.user_id=id_client'" in said, said
    assert said.index("'id_client'") < said.index("'email'"), said
    assert "the events' user ids" in said


def test_the_key_whose_values_are_the_events_ids_comes_first() -> None:
    from shelfwise.governance._contracts import USERS
    from shelfwise.governance._mapping import suggest_columns

    header = ["account_no", "client_code", "mail"]
    samples = {"account_no": ["7", "8", "9"], "client_code": ["c1", "c2", "c3"], "mail": ["a@x.io", "b@x.io"]}
    known = {"c1", "c3"}
    got = suggest_columns(USERS, "user_id", header, samples, known=lambda vs: sum(v in known for v in vs))
    assert [h for h, _ in got][:2] == ["client_code", "account_no"], got
    # without the events' ids: an id column, never the e-mail column, first
    got = suggest_columns(USERS, "user_id", header, samples)
    assert got[-1][0] == "mail", got


def test_a_prestashop_catalog_reads_active_quantity_and_its_short_description(tmp_path: Path) -> None:
    """`active` 0/1, `quantity` (stock) and `description_short` were ignored without a map: a
    deactivated product was served."""
    work = tmp_path / "w"
    report = Ingestor(work).run(_shop(tmp_path, _orders()))
    pr = report.tables["products"]
    assert pr.column_mapping["active"] == "published"
    assert pr.column_mapping["quantity"] == "stock"
    assert pr.column_mapping["description_short"] == "description"
    rows = curated_rows(
        work, "SELECT product_id, published, stock, description FROM curated.products ORDER BY 1"
    )
    assert [(r[0], r[1], r[2]) for r in rows] == [("1", True, 48), ("2", True, 0), ("3", False, 7)]
    assert "<" not in rows[0][3] and "–" in rows[0][3]
    # the cost is said, not silently dropped, and never read as the price
    assert "wholesale_price" in pr.ignored_columns
    assert any("'wholesale_price' is the product's cost" in n and "not read" in n for n in report.notes)


def test_a_customers_company_is_left_out_as_personal_and_optin_is_explained(tmp_path: Path) -> None:
    """`company` was curated as x_company (a sole trader's is their name); `optin` was noted
    without what it is or how to read it."""
    work = tmp_path / "w"
    report = Ingestor(work).run(_shop(tmp_path, _orders()))
    us = report.tables["users"]
    assert "company" in us.personal_columns_dropped
    cols = {r[0] for r in curated_rows(work, "SELECT column_name FROM (DESCRIBE curated.users)")}
    assert "x_company" not in cols and "x_optin" in cols
    said = [n for n in report.notes if "'optin' looks like a consent too" in n]
    assert said and "partners" in said[0] and "--map 'users.consent_marketing=optin'" in said[0], said


@pytest.mark.parametrize("name", ["company", "Company", "billing_company", "Billing Company", "company_name"])
def test_a_company_column_of_any_export_is_personal(name: str) -> None:
    from shelfwise.governance._contracts import Classification, classify_extra_column

    assert classify_extra_column(name) is Classification.PERSONAL
    assert classify_extra_column("company_size") is Classification.INTERNAL
